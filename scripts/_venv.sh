# Sourced by serve.sh and test.sh: create .venv if missing and install the project into it.
# Re-installs only when pyproject.toml changed since the last install (a stamp file keeps its hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtualenv in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)-$EXTRAS"
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing searchsvc${EXTRAS:+[$EXTRAS]} into $VENV" >&2
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${EXTRAS:+[$EXTRAS]}" >"$VENV/pip.log" 2>&1; then
    grep -v "is ignored: it is neither" "$VENV/pip.log" >&2; echo "pip install failed (log: $VENV/pip.log)" >&2; exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
