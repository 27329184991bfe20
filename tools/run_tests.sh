#!/usr/bin/env bash
# The whole mmwst test suite: sets up the environment if needed (tools/setup_env.sh),
# checks lint and formatting with ruff, then runs pytest. Extra arguments go to pytest,
# e.g. `bash tools/run_tests.sh -k resume -x`.
#
# pytest runs in MMWST_TEST_WORKERS processes (pytest-xdist; default 2 on a machine with
# 2 or more cores, else 1), each test file whole in one of them (--dist loadfile, so that
# a file's module fixtures are built once); tests/conftest.py gives each process its
# share of the cores. MMWST_TEST_WORKERS=1 runs everything in one process, as do your own
# -n / --numprocesses / --dist, -p no:xdist, --pdb and --trace.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash tools/setup_env.sh)"
echo "[mmwst tests] ruff check + ruff format --check"
"$PY" -m ruff check .
"$PY" -m ruff format --check --quiet . || {
    echo "[mmwst tests] formatting differs; run: $PY -m ruff format ." >&2
    exit 1
}
workers="${MMWST_TEST_WORKERS:-}"
if [ -z "$workers" ]; then
    workers=1
    [ "$(nproc)" -ge 2 ] && workers=2
fi
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || {
    echo "[mmwst tests] MMWST_TEST_WORKERS must be a whole number >= 1, got '$workers'" >&2
    exit 2
}
parallel=()
if [ "$workers" -gt 1 ]; then
    parallel=(-n "$workers" --dist loadfile)
    for arg in "$@"; do
        case "$arg" in
            -n* | --numprocesses* | --dist* | *no:xdist | --pdb | --trace) parallel=() ;;
        esac
    done
fi
echo "[mmwst tests] pytest${parallel[*]:+ (${parallel[*]})}"
exec "$PY" -m pytest "${parallel[@]}" "$@"
