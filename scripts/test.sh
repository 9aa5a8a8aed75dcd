#!/usr/bin/env bash
# Run the whole test suite: creates .venv if missing, installs the project with test extras, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k feeds -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh test
if [ -x scripts/ensure_chromium.sh ]; then scripts/ensure_chromium.sh || true; fi
exec python -m pytest "$@"
