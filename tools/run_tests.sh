#!/usr/bin/env bash
# The whole mmwst test suite: sets up the environment if needed (tools/setup_env.sh),
# checks lint and formatting with ruff, then runs pytest. Extra arguments go to pytest,
# e.g. `bash tools/run_tests.sh -k resume -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash tools/setup_env.sh)"
echo "[mmwst tests] ruff check + ruff format --check"
"$PY" -m ruff check .
"$PY" -m ruff format --check --quiet . || {
    echo "[mmwst tests] formatting differs; run: $PY -m ruff format ." >&2
    exit 1
}
echo "[mmwst tests] pytest"
exec "$PY" -m pytest "$@"
