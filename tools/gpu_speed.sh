#!/usr/bin/env bash
# The GPU speed check alone, for a short stretch of GPU time on a bare, offline machine
# that has Python 3.12 with a CUDA build of torch (nothing of OpenMMLab): no mmcv build
# and no tests, only the timings of tools/benchmark.py in bf16, eager and compiled.
#
# The benchmark times backbones under a linear head, which needs none of mmcv's compiled
# ops: the stack is installed from the wheelhouse (tools/make_wheelhouse.sh) into a
# private folder and mmcv's Python sources are used as they are (what mmcv-lite is), so
# the set-up takes seconds instead of the minutes of compiling mmcv's CUDA ops that
# tools/gpu_check.sh spends (use that one for the `cuda` tests and the full detector).
#
# Usage: bash tools/gpu_speed.sh WHEELHOUSE LOGDIR [STAGE ...]
#   STAGE, in the order given (default: all of them, in this order):
#     vit      ViT-B/16 224, batch 64: frozen, full FT, LoRA, SSF, RLRR, WST, HST, eager,
#              BENCH_ROUNDS rounds in turns (default 2); WST and HST profiled
#     dense    the dense backbone at 512, batch 8, through and beside the ViT, eager,
#              BENCH_ROUNDS rounds; both profiled
#     vit-frozen-bf16, dense-frozen-bf16  the vit and dense stages with every method's
#              frozen ViT weights held in bf16 (--frozen-dtype bf16): no cast of them in
#              any step, as a parameter-efficient run would hold them
#     compile  ViT-B/16 224, batch 64 under torch.compile: full FT, LoRA, WST, HST
#     dense-compile  the dense backbone at 512, batch 8, under torch.compile
#     compile-hst  ViT-B/16 224, batch 64 under torch.compile: frozen, full FT and HST,
#              the compiled training steps of full FT and HST profiled (their kernels)
#     compile-graphs  the same with the steps captured as CUDA graphs (torch.compile
#              mode reduce-overhead), LoRA and WST too: what is left once the host
#              launches nothing per kernel
#     freqfit  ViT-B/16 224, batch 64: FreqFit + LoRA against frozen, full FT and LoRA,
#              eager, BENCH_ROUNDS rounds in turns, then compiled (one round); FreqFit's
#              eager step profiled
#     kernels  the kernels one compiled training step and inference forward launch on
#              the device (--ops-only --compile, ViT-B/16 224, batch 8): frozen, full FT,
#              LoRA and HST, against the CPU's count of them (docs/benchmark.md, Compiled)
#     configs  the whole detector (configs/wst_coco.py at 1024, 2 images) and segmentor
#              (configs/wst_ade20k.py at 512, 2 crops) through, beside the ViT, LoRA
#              with a simple feature pyramid and full FT (tools/config_speed.py)
#     tests    the `cuda` tests (tests/cuda)
#   The stages that build detectors (configs, tests) run mmcv's three compiled operators
#   they need through torchvision (tools/gpu/mmcv_ext_torchvision.py, installed as
#   mmcv._ext): a stand-in for timing, not for training.
#   GPU_SPEED_SECONDS: the time the whole call may take (default 600); a stage that would
#   not fit in what is left (by its time on an H200: 290, 160, the same for their
#   frozen-bf16 twins, 330, about 240 (through the ViT alone: 200), 230, 330
#   (estimated), 320 (estimated: 170 eager, 150 compiled), 300 (estimated), 165 and
#   85 s) is skipped and said so.
#   DEVICE, ARCH, VIT_SIZE/VIT_BATCH, DENSE_SIZE/DENSE_BATCH: for a dry run on a CPU
#   (DEVICE=cpu ARCH=tiny VIT_SIZE=32 VIT_BATCH=2 DENSE_SIZE=64 DENSE_BATCH=1).
# LOGDIR receives two files, gpu_speed.log and results.tar.gz (the benchmark's tables,
# JSON and charts, refreshed after each stage: a call cut off still returns what
# finished, and a stage cut off reports the methods it measured).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
wheelhouse="$(cd "${1:?usage: bash tools/gpu_speed.sh WHEELHOUSE LOGDIR [STAGE ...]}" && pwd)"
logs="$(mkdir -p "${2:?LOGDIR}" && cd "$2" && pwd)"
shift 2
stages=("$@")
[ "${#stages[@]}" -gt 0 ] || stages=(vit dense compile dense-compile)
deadline=$((SECONDS + ${GPU_SPEED_SECONDS:-600}))
work="${GPU_SPEED_WORK:-/tmp/mmwst-gpu-speed}"  # the tables; LOGDIR gets them packed
results="$work/results"
mkdir -p "$results"
exec > >(tee -a "$logs/gpu_speed.log") 2>&1
cd "$repo"
python="${PYTHON:-python3}"
device="${DEVICE:-cuda}" arch="${ARCH:-b}" rounds="${BENCH_ROUNDS:-2}"
amp=bf16
[ "$device" = cpu ] && amp=none

say() { printf '[gpu speed %4ds] %s\n' "$SECONDS" "$*"; }
pack() { tar -czf "$logs/results.tar.gz" -C "$work" results; }

say "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 1)"

# the stack, from the wheelhouse, beside the machine's own packages (torch, numpy, cv2 ...)
site="${GPU_SPEED_SITE:-/tmp/mmwst-site}"
if [ ! -f "$site/.done" ]; then
    rm -rf "$site" && mkdir -p "$site/mmcv-src"
    wheels=()
    for w in "$wheelhouse"/*.whl; do
        case "$(basename "$w")" in setuptools-* | ruff-*) ;; *) wheels+=("$w") ;; esac
    done
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
        "${wheels[@]}" || { say 'installing the wheelhouse failed'; exit 1; }
    tar -xzf "$wheelhouse"/mmcv-*.tar.gz -C "$site/mmcv-src" --strip-components=1 \
        || { say "no mmcv source in $wheelhouse"; exit 1; }
    cp tools/gpu/mmcv_ext_torchvision.py "$site/mmcv-src/mmcv/_ext.py"
    touch "$site/.done"
fi
export PYTHONPATH="$site/mmcv-src:$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
# mmcv without its compiled ops is what this check wants: the check would stop on it
export MMWST_SKIP_DEPENDENCY_CHECK=1 PYTHONUNBUFFERED=1
say "$("$python" -c 'import sys, torch, mmcv, mmwst; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU", "mmcv", mmcv.__version__, "(Python only)")' 2>&1 | tail -n 1)"

stage() {  # stage NAME ESTIMATE_S COMMAND...: run unless it would not fit; cut at the deadline
    local name=$1 estimate=$2 left rc
    shift 2
    left=$((deadline - SECONDS - 5))
    if [ "$left" -lt "$estimate" ]; then
        say "$name: skipped, ${left}s left of the ${estimate}s it takes"
        return 1
    fi
    say "$name: start (${left}s left)"
    timeout --signal=INT --kill-after=10 "$left" "$@"
    rc=$?
    say "$name: exit $rc"
    pack
    return "$rc"
}

bench() {  # bench NAME ESTIMATE_S ARGS...: tools/benchmark.py as a stage
    local name=$1 estimate=$2
    shift 2
    stage "$name" "$estimate" "$python" tools/benchmark.py --device "$device" --amp "$amp" \
        --arch "$arch" --warmup 3 --repeats 10 --peak-tflops auto --no-counts \
        --out "$results/$name" "$@"
}

vit=(--img-size "${VIT_SIZE:-224}" --batch "${VIT_BATCH:-64}")
dense=(--img-size "${DENSE_SIZE:-512}" --batch "${DENSE_BATCH:-8}")
for s in "${stages[@]}"; do
    case "$s" in
        vit) bench vit_224_b64 290 "${vit[@]}" --rounds "$rounds" --profile wst hst \
            --methods frozen full_finetune lora ssf rlrr wst hst ;;
        dense) bench dense_512_b8 160 "${dense[@]}" --rounds "$rounds" \
            --profile dense_wst_hst dense_beside_vit \
            --methods frozen full_finetune dense_wst_hst dense_beside_vit ;;
        vit-frozen-bf16) bench vit_frozen_bf16_224_b64 290 "${vit[@]}" --rounds "$rounds" \
            --frozen-dtype bf16 --profile hst --methods frozen full_finetune lora ssf rlrr wst hst ;;
        dense-frozen-bf16) bench dense_frozen_bf16_512_b8 160 "${dense[@]}" --rounds "$rounds" \
            --frozen-dtype bf16 --profile dense_beside_vit \
            --methods frozen full_finetune dense_wst_hst dense_beside_vit ;;
        compile) bench compile_224_b64 330 "${vit[@]}" --compile \
            --methods frozen full_finetune lora wst hst ;;
        dense-compile) bench compile_dense_512_b8 240 "${dense[@]}" --compile \
            --profile dense_wst_hst --methods frozen full_finetune dense_wst_hst dense_beside_vit ;;
        compile-graphs) bench graphs_224_b64 330 "${vit[@]}" --compile inductor:reduce-overhead \
            --profile full_finetune hst --methods frozen full_finetune lora wst hst ;;
        compile-hst) bench compile_hst_224_b64 230 "${vit[@]}" --compile \
            --profile full_finetune hst --methods frozen full_finetune hst ;;
        freqfit)
            bench freqfit_224_b64 170 "${vit[@]}" --rounds "$rounds" --profile freqfit_lora \
                --methods frozen full_finetune lora freqfit_lora \
                && bench freqfit_compile_224_b64 150 "${vit[@]}" --compile \
                    --methods frozen full_finetune lora freqfit_lora ;;
        kernels) stage kernels 300 "$python" tools/benchmark.py --device "$device" --arch "$arch" \
            --img-size "${VIT_SIZE:-224}" --batch 8 --ops-only --compile \
            --out "$results/kernels_224_b8" --methods hst ;;
        configs)
            small=()  # a dry run on a CPU: one small model
            [ "$device" = cpu ] && small=(--size 64 --warmup 0 --iters 1 --suites coco --only LoRA)
            stage configs 150 "$python" tools/config_speed.py --device "$device" \
                --out "$results/config_speed" "${small[@]}" ;;
        tests) stage tests 70 env MMWST_TEST_DEVICE="$device" "$python" -m pytest -m cuda \
            tests/cuda -q -rfE -p no:cacheprovider --junitxml="$results/cuda_tests.xml" ;;
        *) say "unknown stage $s (vit dense vit-frozen-bf16 dense-frozen-bf16 compile dense-compile compile-hst compile-graphs freqfit kernels configs tests)" ;;
    esac
done
pack
say "finished; logs in $logs"
