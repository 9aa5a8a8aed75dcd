#!/usr/bin/env bash
# Run the service on the embedded default: creates .venv if missing, installs the project, builds a demo
# index from index/demo/ when no index exists, and serves at http://127.0.0.1:8000.
# Environment: SEARCHSVC_INDEX_DIR (default ./var/index), SEARCHSVC_HOST, SEARCHSVC_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
export SEARCHSVC_INDEX_DIR="${SEARCHSVC_INDEX_DIR:-$PWD/var/index}"
if ! searchsvc stats >/dev/null 2>&1; then
  echo "no index in $SEARCHSVC_INDEX_DIR: building the demo index from index/demo/" >&2
  searchsvc index index/demo
fi
exec searchsvc serve --host "${SEARCHSVC_HOST:-127.0.0.1}" --port "${SEARCHSVC_PORT:-8000}" "$@"
