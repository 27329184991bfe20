"""Benchmark every method against the frozen forward and full fine-tuning.

    python tools/benchmark.py [--methods all|NAME ...] [--arch b|tiny] [--img-size 224]
        [--batch 8] [--device cpu|cuda] [--amp none|bf16|fp16] [--warmup 2] [--repeats 5]
        [--out docs/benchmark/cpu_vit-b16] [--profile hst dense_wst_hst]
        [--peak-tflops 989]

For every method (classification backbones with a linear head, and the dense WST + HST
backbone): trainable and total backbone parameters, forward FLOPs (mmengine's
analysis), training step time (forward, backward, AdamW step), peak memory of training
(CUDA: allocated; CPU: resident-set growth), and inference time (mergeable methods
merged first) - each also as a ratio to the frozen backbone's inference forward and to
full fine-tuning, measured in one run with warm-up and the median of repeats, plus
throughput (images/s) and the TFLOP/s inference reaches (with --peak-tflops, the share of
the device's peak). --profile adds, for the named methods, the operators that dominate a
training step and the forward time of each part of the model. A method name with
'+cp' (e.g. rlrr+cp) checkpoints the frozen blocks (with_cp=True): memory for time;
'all' includes the four methods whose memory is closest to full fine-tuning with it.
Writes Markdown, CSV, JSON and a PNG chart.
"""

import argparse
import sys


def main(argv=None) -> int:
    from benchmarking import (
        CHECKPOINTED,
        METHODS,
        machine_description,
        run_all,
        write_outputs,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['all'],
        help="'all' or names; NAME+cp checkpoints the frozen blocks (e.g. rlrr+cp)",
    )
    parser.add_argument('--arch', choices=['b', 'tiny'], default='b')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='work_dirs/benchmark/results')
    parser.add_argument(
        '--profile', nargs='*', default=[], help='methods whose training step is profiled'
    )
    parser.add_argument(
        '--peak-tflops',
        type=float,
        help="the device's dense peak TFLOP/s at the measured precision (e.g. 989 for an "
        'H100 SXM in bf16), to report the share of it inference reaches',
    )
    args = parser.parse_args(argv)
    methods = [*METHODS, *CHECKPOINTED] if args.methods == ['all'] else args.methods
    for required in ('full_finetune', 'frozen'):  # the two references of every ratio
        if required not in methods:
            methods.insert(0, required)
    methods += [m for m in args.profile if m not in methods]
    results = run_all(
        methods,
        arch=args.arch,
        img_size=args.img_size,
        batch=args.batch,
        device=args.device,
        amp=args.amp,
        warmup=args.warmup,
        repeats=args.repeats,
        profile=args.profile,
        peak_tflops=args.peak_tflops,
    )
    title = (
        f'ViT-{args.arch} {args.img_size}x{args.img_size}, batch {args.batch}, '
        f'{args.device}, amp {args.amp}, median of {args.repeats} after {args.warmup} '
        f'warm-up; {machine_description(args.device)}'
    )
    paths = write_outputs(results, args.out, title)
    print(open(paths[0]).read())
    print('[benchmark] wrote ' + ', '.join(paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
