#!/usr/bin/env bash
# Fill a wheelhouse for an offline machine: the locked stack minus the torch family and
# minus what that machine already has, as wheels for its Python and mmcv as source (the
# set-up compiles it there, for its GPU). Then, on that machine:
#     MMWST_WHEELHOUSE=DIR MMWST_TORCH=active bash tools/setup_env.sh
#
# Usage: bash tools/make_wheelhouse.sh DIR [PYTHON_VERSION] [HAVE_FILE]
#   PYTHON_VERSION  the target's Python, e.g. 3.12 (default: this interpreter's)
#   HAVE_FILE       the target's `python3 -m pip list --format=freeze` (or one distribution
#                   name a line): those are kept there and not downloaded
# Needs the package index (run it where pip can download).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:?usage: bash tools/make_wheelhouse.sh DIR [PYTHON_VERSION] [HAVE_FILE]}"
pyver="${2:-$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
have="${3:-}"
py="$(bash "$repo/tools/setup_env.sh")"
mkdir -p "$dir"
mapfile -t wanted < <("$py" "$repo/tools/_setup_stack.py" wheelhouse "$repo/requirements/lock.txt" "$pyver" $have)
binary=() source=()
for req in "${wanted[@]}"; do
    case "$req" in mmcv==*) source+=("$req") ;; *) binary+=("$req") ;; esac
done
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
echo "[wheelhouse] ${#wanted[@]} packages for Python $pyver into $dir"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp "${platforms[@]}" -d "$dir" "${binary[@]}"
if [ "${#source[@]}" -gt 0 ]; then
    "$py" -m pip download -q --no-deps --no-binary=:all: -d "$dir" "${source[@]}"
fi
echo "[wheelhouse] $(ls "$dir" | wc -l) files, $(du -sh "$dir" | cut -f1): $dir"
