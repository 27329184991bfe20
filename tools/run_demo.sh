#!/usr/bin/env bash
# The main job on its embedded default: sets up the environment if needed
# (tools/setup_env.sh), then runs tools/demo.py - generate the data if missing, train,
# evaluate, print the metrics. Extra arguments go to tools/demo.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash tools/setup_env.sh)"
exec "$PY" tools/demo.py "$@"
