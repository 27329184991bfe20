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
# Usage: bash tools/setup_env.sh            (prints the environment's python path last)
#        source tools/setup_env.sh          (also activates the venv)
# Environment:
#   PYTHON=python3.X      the interpreter (3.10 - 3.12); with MMWST_TORCH=system/active,
#                         the one whose torch is kept (default: python3)
#   MMWST_TORCH=pinned    (default) install the tested torch from the lock into the venv
#   MMWST_TORCH=system    keep the torch and torchvision of PYTHON: a venv with its system
#                         site packages, the rest of the stack installed around them
#   MMWST_TORCH=active    keep them too, and install into PYTHON's own environment (an
#                         activated conda env or venv) instead of creating one
#   MMWST_WHEELHOUSE=DIR  offline: install only from the wheels (and mmcv's sdist) in DIR
#                         (pip --no-index --find-links DIR); tools/make_wheelhouse.sh fills it
#   MAX_JOBS=N            parallel compile jobs for mmcv (default: all cores)
#   TORCH_CUDA_ARCH_LIST  GPU architectures for mmcv's CUDA ops (default: the visible GPUs')
#   FORCE_CUDA=0|1        build mmcv without / with CUDA ops regardless of the visible GPU

_mmwst_setup() {
    set -eo pipefail
    local repo venv cache py lock stamp want mode helper
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cache="${MMWST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmwst}"
    lock="$repo/requirements/lock.txt"
    helper="$repo/tools/_setup_stack.py"
    mode="${MMWST_TORCH:-pinned}"

    _say() { printf '[mmwst setup] %s\n' "$*" >&2; }
    _die() { printf '[mmwst setup] ERROR: %s\n' "$*" >&2; return 1; }

    case "$mode" in
        pinned | system | active) ;;
        *) _die "MMWST_TORCH=$mode: choose pinned (default: the tested torch in .venv), system (keep PYTHON's torch, venv with its site packages) or active (keep it and install into PYTHON's own environment)" ;;
    esac
    local pip_src=()
    if [ -n "${MMWST_WHEELHOUSE:-}" ]; then
        [ -d "$MMWST_WHEELHOUSE" ] ||
            _die "MMWST_WHEELHOUSE=$MMWST_WHEELHOUSE is not a folder (make one with tools/make_wheelhouse.sh)"
        pip_src=(--no-index --find-links "$(cd "$MMWST_WHEELHOUSE" && pwd)")
        # pips that pip itself starts (build back-ends) stay offline too
        export PIP_NO_INDEX=1 PIP_FIND_LINKS="$(cd "$MMWST_WHEELHOUSE" && pwd)"
    fi

    # ---- choose an interpreter -------------------------------------------------------
    py="${PYTHON:-}"
    if [ -z "$py" ] && [ "$mode" != pinned ]; then
        py=python3
    elif [ -z "$py" ]; then
        for cand in python3.11 python3.12 python3.10 python3; do
            if command -v "$cand" >/dev/null 2>&1 &&
                "$cand" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
                py="$cand"
                break
            fi
        done
    fi
    [ -n "$py" ] || _die "no Python 3.10-3.12 found on PATH; install one or set PYTHON=/path/to/python3.X"
    command -v "$py" >/dev/null 2>&1 || _die "PYTHON=$py is not an executable"
    "$py" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' ||
        _die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); mmwst needs 3.10-3.12 (set PYTHON=...)"
    local setup_lock
    if [ "$mode" = active ]; then
        venv="$("$py" -c 'import sys; print(sys.prefix)')"
        stamp="$cache/active-$(echo "$venv" | sha256sum | cut -c1-12).stamp"
        setup_lock="${stamp%.stamp}.lock"
    else
        venv="${MMWST_VENV:-$repo/.venv}"
        stamp="$venv/.mmwst-setup-stamp"
        setup_lock="$venv.lock"
    fi

    # ---- fast path: nothing changed since the last successful set-up -----------------
    want="$( (cat "$lock" "$repo/setup.py" "${BASH_SOURCE[0]}" "$helper" "$repo/mmwst/utils/dependencies.py"; echo "$repo $mode"; "$py" -V) | sha256sum | cut -c1-16)"
    local vpy="$venv/bin/python"
    [ "$mode" = active ] && vpy="$("$py" -c 'import sys; print(sys.executable)')"
    if [ -x "$vpy" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "$vpy"
        return 0
    fi

    # ---- bring-your-own torch: refuse an unsupported one before touching anything ----
    if [ "$mode" != pinned ]; then
        "$py" "$helper" torch-check >&2 || _die "MMWST_TORCH=$mode cannot keep the torch of $py (see above)"
    fi

    mkdir -p "$cache"
    [ "$mode" = active ] || mkdir -p "$(dirname "$venv")"
    # one set-up at a time per environment
    exec 9>"$setup_lock"
    flock 9

    local t0=$SECONDS
    if ls "$cache"/wheels/*/mmcv-*.whl >/dev/null 2>&1; then
        _say "setting up $venv (MMWST_TORCH=$mode; a compiled mmcv is cached in $cache/wheels)"
    else
        _say "setting up $venv (MMWST_TORCH=$mode; first run: ~20 min on 2 cores, mostly compiling mmcv's ops; later runs: seconds)"
    fi
    if [ "$mode" != active ] && [ ! -x "$venv/bin/python" ]; then
        if [ "$mode" = system ]; then
            _say "creating virtual environment with $("$py" -V) and its system site packages"
            "$py" -m venv --system-site-packages "$venv"
        else
            _say "creating virtual environment with $("$py" -V)"
            "$py" -m venv "$venv"
        fi
    fi
    if [ "$mode" = system ] && ! "$vpy" -c 'import torch' 2>/dev/null; then
        _die "the venv $venv does not see the torch of $py ($py is probably itself a venv, whose packages a new venv does not inherit): use MMWST_TORCH=active to install into that environment, or remove $venv if it was made by another mode"
    fi
    local pipq=("$vpy" -m pip --disable-pip-version-check)

    # how mmcv will be compiled (CPU or CUDA ops, for which GPUs): with your own torch,
    # checked before anything is installed; with the pinned one, once it is installed
    local build_env="" key
    if [ "$mode" != pinned ]; then
        build_env="$("$vpy" "$helper" mmcv-build 2>&1)" || _die "$build_env"
    fi

    # ---- 1. the pinned stack, mmcv aside (it is compiled below) ------------------------
    local mmcv_pin
    mmcv_pin="$(grep -E '^mmcv==' "$lock")" || _die "requirements/lock.txt has no mmcv== line"
    local pip_log="$cache/setup-pip-$mode.log"
    if [ "$mode" = pinned ]; then
        _say "installing the pinned stack from requirements/lock.txt (torch wheels are large; a few minutes the first time)"
        grep -vE '^mmcv==' "$lock" >"$venv/lock-without-mmcv.txt"
        if ! "${pipq[@]}" install --progress-bar off "${pip_src[@]}" -r "$venv/lock-without-mmcv.txt" 2>&1 |
            tee "$pip_log" | { grep --line-buffered -E '^(Collecting|Successfully)' || true; } |
            sed -u 's/^/    /' >&2; then
            tail -n 30 "$pip_log" >&2
            _die "installing the pinned stack failed (log above, full log in $pip_log)"
        fi
    else
        local wanted=()
        mapfile -t wanted < <("$vpy" "$helper" plan "$mode" "$lock")
        if [ "${#wanted[@]}" -gt 0 ]; then
            _say "keeping $("$vpy" -c 'import torch; print("torch", torch.__version__)') and the packages already there; installing ${#wanted[@]} locked ones: ${wanted[*]}"
            if ! "${pipq[@]}" install --progress-bar off --no-deps "${pip_src[@]}" "${wanted[@]}" >"$pip_log" 2>&1; then
                tail -n 30 "$pip_log" >&2
                _die "installing the stack around your torch failed (log above, full log in $pip_log)"
            fi
        fi
    fi

    # ---- 2. mmcv with ops, from the wheel cache or compiled ----------------------------
    if [ -z "$build_env" ]; then
        build_env="$("$vpy" "$helper" mmcv-build 2>&1)" || _die "$build_env"
    fi
    key="$(sed -n 's/^KEY=//p' <<<"$build_env")"
    local want_cuda=0
    grep -q '^FORCE_CUDA=1' <<<"$build_env" && want_cuda=1
    if ! "$vpy" - "$mmcv_pin" "$want_cuda" "$repo/mmwst/utils/dependencies.py" <<'EOF' 2>/dev/null; then
import importlib.util
import sys
from importlib.metadata import version
import torch  # noqa: F401  (mmcv's ops link against the installed torch)
import mmcv._ext as ext
spec = importlib.util.spec_from_file_location('_mmwst_dependencies', sys.argv[3])
deps = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(deps)
cuda_ops = deps.ops_have_cuda_kernels(ext.__file__)
sys.exit(version('mmcv') != sys.argv[1].split('==')[1] or (sys.argv[2] == '1' and not cuda_ops))
EOF
        local wheel_dir wheel
        wheel_dir="$cache/wheels/$key"
        wheel="$(ls "$wheel_dir"/mmcv-"${mmcv_pin#mmcv==}"-*.whl 2>/dev/null | head -n 1 || true)"
        if [ -z "$wheel" ]; then
            local build_dir log what="CPU ops"
            build_dir="$(mktemp -d "$cache/build.XXXXXX")"
            log="$cache/mmcv-build-$key.log"
            [ "$want_cuda" = 1 ] && what="CUDA ops for sm $(sed -n 's/^TORCH_CUDA_ARCH_LIST=//p' <<<"$build_env")"
            _say "compiling $mmcv_pin with $what, $key, ${MAX_JOBS:-$(nproc)} jobs (~15 min on 2 cores; full log: $log)"
            if ! "$vpy" -c 'import pkg_resources' 2>/dev/null; then
                # mmcv's setup.py needs pkg_resources: the locked setuptools, for the build only
                local setuptools_pin
                setuptools_pin="$(grep -E '^setuptools==' "$lock")"
                _say "this setuptools has no pkg_resources; building with $setuptools_pin"
                "${pipq[@]}" install -q --no-deps "${pip_src[@]}" --target "$build_dir/build-tools" \
                    "$setuptools_pin" >&2 || _die "could not install $setuptools_pin for the build"
            fi
            (
                while IFS= read -r kv; do export "${kv?}"; done < <(grep -v '^KEY=' <<<"$build_env")
                [ -d "$build_dir/build-tools" ] && export PYTHONPATH="$build_dir/build-tools${PYTHONPATH:+:$PYTHONPATH}"
                MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
                    "${pipq[@]}" wheel -v --no-deps --no-build-isolation --no-cache-dir \
                    "${pip_src[@]}" -w "$build_dir" "$mmcv_pin"
            ) >"$log" 2>&1 &
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
    # (the variable, not only the flag: newer setuptools run `develop` as a nested pip,
    # which would otherwise build in isolation and download setuptools)
    PIP_NO_BUILD_ISOLATION=0 "${pipq[@]}" install -q --no-deps --no-build-isolation -e "$repo" >&2
    if [ "$mode" = pinned ]; then
        "${pipq[@]}" check >&2 || _die "pip check found inconsistent requirements (see above)"
    elif ! "${pipq[@]}" check >"$cache/pip-check-$mode.log" 2>&1; then
        _say "note: pip check reports requirements that your environment meets its own way (e.g. opencv-python-headless for opencv-python); mmwst's own check follows:"
        sed 's/^/    /' "$cache/pip-check-$mode.log" >&2
    fi
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
