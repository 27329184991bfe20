#!/usr/bin/env bash
# Create (or bring up to date) the mmwst environment in one step:
#   * a virtual environment (default: <repo>/.venv, override with MMWST_VENV),
#   * the exact tested stack from requirements/lock.txt,
#   * mmcv compiled from source with its C++ ops (RoIAlign, NMS, ...),
#   * mmwst itself, installed editable.
#
# It is idempotent: when the environment already matches the lock it returns at once.
# The first run compiles mmcv (about 15 minutes on 2 cores). The compiled wheel is kept
# in a per-machine cache keyed by the torch build it was compiled against
# (default ~/.cache/mmwst/wheels, override with MMWST_CACHE), so fresh clones on the same
# machine reuse it within seconds.
#
# Usage: bash tools/setup_env.sh            (prints the venv's python path last)
#        source tools/setup_env.sh          (also activates the venv)
# Environment: PYTHON=python3.X to choose the interpreter (3.10 - 3.12),
#              MAX_JOBS=N parallel compile jobs for mmcv (default: all cores).

_mmwst_setup() {
    set -eo pipefail
    local repo venv cache py lock stamp want
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${MMWST_VENV:-$repo/.venv}"
    cache="${MMWST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmwst}"
    lock="$repo/requirements/lock.txt"

    _say() { printf '[mmwst setup] %s\n' "$*" >&2; }
    _die() { printf '[mmwst setup] ERROR: %s\n' "$*" >&2; return 1; }

    # ---- choose an interpreter -------------------------------------------------------
    py="${PYTHON:-}"
    if [ -z "$py" ]; then
        for cand in python3.11 python3.12 python3.10 python3; do
            if command -v "$cand" >/dev/null 2>&1 &&
                "$cand" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
                py="$cand"
                break
            fi
        done
    fi
    [ -n "$py" ] || _die "no Python 3.10-3.12 found on PATH; install one or set PYTHON=/path/to/python3.X"
    "$py" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' ||
        _die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); mmwst needs 3.10-3.12 (set PYTHON=...)"

    # ---- fast path: nothing changed since the last successful set-up -----------------
    want="$( (cat "$lock" "$repo/setup.py" "${BASH_SOURCE[0]}"; echo "$repo"; "$py" -V) | sha256sum | cut -c1-16)"
    stamp="$venv/.mmwst-setup-stamp"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "$venv/bin/python"
        return 0
    fi

    mkdir -p "$cache" "$(dirname "$venv")"
    # one set-up at a time per environment
    exec 9>"$venv.lock"
    flock 9

    local t0=$SECONDS
    if ls "$cache"/wheels/*/mmcv-*.whl >/dev/null 2>&1; then
        _say "setting up $venv (a few minutes: a compiled mmcv is cached in $cache/wheels)"
    else
        _say "setting up $venv (first run: ~20 min, mostly compiling mmcv's ops; later runs: seconds)"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        _say "creating virtual environment with $("$py" -V)"
        "$py" -m venv "$venv"
    fi
    local vpy="$venv/bin/python"
    local pipq=("$vpy" -m pip --disable-pip-version-check)

    # ---- 1. the pinned stack, mmcv aside (it is compiled below) ------------------------
    local mmcv_pin
    mmcv_pin="$(grep -E '^mmcv==' "$lock")" || _die "requirements/lock.txt has no mmcv== line"
    _say "installing the pinned stack from requirements/lock.txt (torch wheels are large; a few minutes the first time)"
    grep -vE '^mmcv==' "$lock" >"$venv/lock-without-mmcv.txt"
    local pip_log="$venv/setup-pip.log"
    if ! "${pipq[@]}" install --progress-bar off -r "$venv/lock-without-mmcv.txt" 2>&1 | tee "$pip_log" |
        { grep --line-buffered -E '^(Collecting|Successfully)' || true; } | sed -u 's/^/    /' >&2; then
        tail -n 30 "$pip_log" >&2
        _die "installing the pinned stack failed (log above, full log in $pip_log)"
    fi

    # ---- 2. mmcv with ops, from the per-torch wheel cache or compiled ----------------
    if ! "$vpy" - "$mmcv_pin" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
import torch  # noqa: F401  (mmcv's ops link against the installed torch)
import mmcv._ext  # noqa: F401
sys.exit(version('mmcv') != sys.argv[1].split('==')[1])
EOF
        local key wheel_dir wheel
        key="$("$vpy" -c 'import sys, torch
flavour = "cuda" if torch.cuda.is_available() else "cpu"
print(f"torch{torch.__version__}-cp{sys.version_info[0]}{sys.version_info[1]}-{flavour}")')"
        wheel_dir="$cache/wheels/$key"
        wheel="$(ls "$wheel_dir"/mmcv-"${mmcv_pin#mmcv==}"-*.whl 2>/dev/null | head -n 1 || true)"
        if [ -z "$wheel" ]; then
            local build_dir log
            build_dir="$(mktemp -d "$cache/build.XXXXXX")"
            log="$cache/mmcv-build-$key.log"
            _say "compiling $mmcv_pin with ops for $key (~15 min on 2 cores; full log: $log)"
            MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
                "${pipq[@]}" wheel -v --no-deps --no-build-isolation --no-cache-dir \
                -w "$build_dir" "$mmcv_pin" >"$log" 2>&1 &
            local pid=$! last=""
            while kill -0 "$pid" 2>/dev/null; do
                sleep 15
                local prog
                prog="$(grep -oE '^\s*\[[0-9]+/[0-9]+\]' "$log" | tr -d ' ' | tail -n 1 || true)"
                if [ -n "$prog" ] && [ "$prog" != "$last" ]; then
                    _say "  compiling mmcv ops: ${prog//[\[\]]/} files  ($((SECONDS - t0)) s elapsed)"
                    last="$prog"
                fi
            done
            if ! wait "$pid"; then
                tail -n 40 "$log" >&2
                _die "compiling mmcv failed (log above, full log in $log)"
            fi
            mkdir -p "$wheel_dir"
            mv "$build_dir"/mmcv-*.whl "$wheel_dir"/
            rm -rf "$build_dir"
            wheel="$(ls "$wheel_dir"/mmcv-"${mmcv_pin#mmcv==}"-*.whl | head -n 1)"
            _say "cached the compiled wheel at $wheel"
        else
            _say "reusing compiled mmcv from $wheel"
        fi
        "${pipq[@]}" install -q --no-deps --force-reinstall "$wheel" >&2
    fi

    # ---- 3. mmwst itself, editable ----------------------------------------------------
    _say "installing mmwst (editable) from $repo"
    "${pipq[@]}" install -q --no-deps --no-build-isolation -e "$repo" >&2
    "${pipq[@]}" check >&2 || _die "pip check found inconsistent requirements (see above)"
    "$vpy" -c 'import mmwst' >&2 || _die "the environment is installed but 'import mmwst' fails (see above)"

    echo "$want" >"$stamp"
    _say "environment ready in $((SECONDS - t0)) s: $venv"
    echo "$vpy"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    _mmwst_setup "$@"
else
    _mmwst_python="$(_mmwst_setup "$@")" || return 1
    # shellcheck disable=SC1091
    source "$(dirname "$_mmwst_python")/activate"
fi
