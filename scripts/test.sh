#!/usr/bin/env bash
# Run the whole test suite: creates .venv if missing, installs the project with test extras, then
# lint (ruff), types (mypy --strict, configured in pyproject.toml) and pytest (warnings are errors).
# Extra arguments go to pytest (e.g. scripts/test.sh -k feeds -x); SEARCHSVC_SKIP_LINT=1 skips the
# first two for a quick local run (CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh test
if [ -x scripts/ensure_chromium.sh ]; then scripts/ensure_chromium.sh || true; fi
# axe-core for the accessibility tests (pinned, integrity-checked, cached in .cache/axe); offline it
# says why and the tests skip.
if [ -x scripts/ensure_axe.sh ]; then scripts/ensure_axe.sh >/dev/null || true; fi
if [ "${SEARCHSVC_SKIP_LINT:-0}" != "1" ]; then
  echo "ruff check" >&2
  ruff check .
  echo "mypy (strict)" >&2
  mypy
fi
exec python -m pytest "$@"
