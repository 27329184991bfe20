#!/usr/bin/env bash
# The GPU check, in one command, for a bare and offline GPU machine that has Python
# 3.10-3.12 with a CUDA build of torch and nvcc (and nothing of OpenMMLab):
#
#   1. set-up: tools/setup_env.sh with MMWST_TORCH=active and MMWST_WHEELHOUSE (the
#      machine's torch is kept; the rest of the stack comes from the wheelhouse, made
#      beforehand with tools/make_wheelhouse.sh); mmcv is compiled with its CUDA ops for
#      the visible GPU's architecture only, with all cores;
#   2. the `cuda` tests (pytest -m cuda): every tuner forward/backward in fp32 and bf16
#      against the CPU, merging, the dense detector and segmentor training, resume;
#   3. the benchmark, bf16 autocast: ViT-B/16 at 224 with batch 64, and the dense
#      backbone at 512, each list measured BENCH_ROUNDS times in turns (default 2; the
#      tables give the median and the spread of every ratio); then full fine-tuning and
#      LoRA under each SDPA backend (the default choice included, side by side), and
#      COMPILE_METHODS (default: full FT, LoRA, SSF, RLRR, WST, HST) under torch.compile.
#
# Usage: bash tools/gpu_check.sh WHEELHOUSE LOGDIR [STAGE ...]
#   STAGE: setup tests bench dense sdpa compile (default: all, in that order;
#   'variants' stands for sdpa compile). A stage that
#   finished is skipped when the script runs again on the same machine (its marker is
#   kept in .gpu_cache/), so a second call picks up where a cut-off one stopped.
#   SDPA_BACKENDS: the backends the sdpa stage measures (default: default flash
#   efficient cudnn math; 'default' is PyTorch's own choice, keep it for a baseline).
#   GPU_CHECK_SECONDS: the time the whole call may take (default 570); a stage that
#   would not fit is cut off, and the logs written so far stay in LOGDIR.
# LOGDIR receives gpu_check.log (everything, as it happens) and results.tar.gz (the
# test report, mmcv's build log and the benchmark tables, refreshed after each stage).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
wheelhouse="$(cd "${1:?usage: bash tools/gpu_check.sh WHEELHOUSE LOGDIR [STAGE ...]}" && pwd)"
logs="$(mkdir -p "${2:?LOGDIR}" && cd "$2" && pwd)"
shift 2
stages=("$@")
[ "${#stages[@]}" -gt 0 ] || stages=(setup tests bench dense sdpa compile)
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-570}))
state="$repo/.gpu_cache"
results="$state/results"
mkdir -p "$state" "$results"
exec > >(tee -a "$logs/gpu_check.log") 2>&1
cd "$repo"

export MMWST_CACHE="$state" MMWST_TORCH=active MMWST_WHEELHOUSE="$wheelhouse"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}" PYTHONUNBUFFERED=1 PYTHON="${PYTHON:-python3}"

say() { printf '[gpu check %4ds] %s\n' "$SECONDS" "$*"; }
pack() { tar -czf "$logs/results.tar.gz" -C "$state" results; }
stage() {  # stage NAME COMMAND...: run unless done; cut off at the deadline
    local name=$1 left rc
    shift
    if [ -f "$state/done.$name" ]; then
        say "$name: done in an earlier call"
        return 0
    fi
    left=$((deadline - SECONDS - 10))
    if [ "$left" -lt 30 ]; then
        say "$name: skipped, ${left}s left (run again: bash tools/gpu_check.sh ... $name)"
        return 1
    fi
    say "$name: start (${left}s left)"
    timeout --signal=INT --kill-after=10 "$left" "$@"
    rc=$?
    say "$name: exit $rc"
    [ "$rc" = 0 ] && touch "$state/done.$name"
    pack
    return "$rc"
}

say "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
say "$("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "NO GPU")' 2>&1)"
say "nvcc: $(nvcc --version 2>&1 | tail -n 2 | head -n 1)"

py=""
expanded=()
for s in "${stages[@]}"; do  # 'variants': the SDPA backends, then torch.compile
    if [ "$s" = variants ]; then expanded+=(sdpa compile); else expanded+=("$s"); fi
done
for s in "${expanded[@]}"; do
    case "$s" in
        setup)
            stage setup bash tools/setup_env.sh || { say 'set-up failed: nothing else can run'; break; }
            cp "$state"/mmcv-build-*.log "$results"/ 2>/dev/null
            ;;
        tests)
            py="$(bash tools/setup_env.sh)" || break
            MMWST_TEST_DEVICE=cuda stage tests "$py" -m pytest -m cuda tests/cuda -v -rA -p no:cacheprovider \
                --junitxml="$results/cuda_tests.xml"
            ;;
        bench)
            py="$(bash tools/setup_env.sh)" || break
            stage bench "$py" tools/benchmark.py --device cuda --amp bf16 --img-size 224 \
                --batch 64 --warmup 3 --repeats 10 --rounds "${BENCH_ROUNDS:-2}" --peak-tflops auto \
                --out "$results/vit-b16_224_b64" \
                --methods ${BENCH_METHODS:-frozen full_finetune lora adapter ssf vpt_deep wst hst rlrr freqfit_lora patt}
            ;;
        dense)
            py="$(bash tools/setup_env.sh)" || break
            stage dense "$py" tools/benchmark.py --device cuda --amp bf16 --img-size 512 \
                --batch 8 --warmup 3 --repeats 10 --rounds "${BENCH_ROUNDS:-2}" --peak-tflops auto \
                --out "$results/dense_512_b8" \
                --methods frozen full_finetune dense_wst_hst dense_beside_vit
            ;;
        sdpa)
            py="$(bash tools/setup_env.sh)" || break
            stage sdpa bash -c '
                set -e
                for sdpa in ${SDPA_BACKENDS:-default flash efficient cudnn math}; do
                    "$0" tools/benchmark.py --device cuda --amp bf16 --img-size 224 --batch 64 \
                        --warmup 3 --repeats 10 --peak-tflops auto --sdpa $sdpa \
                        --methods full_finetune lora --out "$1/sdpa_$sdpa"
                done
            ' "$py" "$results"
            ;;
        compile)
            py="$(bash tools/setup_env.sh)" || break
            stage compile "$py" tools/benchmark.py --device cuda --amp bf16 --img-size 224 \
                --batch 64 --warmup 3 --repeats 10 --peak-tflops auto --compile \
                --methods ${COMPILE_METHODS:-full_finetune lora ssf rlrr wst hst} --out "$results/compile"
            ;;
        *) say "unknown stage $s (setup tests bench dense sdpa compile; variants = sdpa compile)" ;;
    esac
done
pack
say "finished; logs in $logs"
