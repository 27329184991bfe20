"""Benchmark every method against the frozen forward and full fine-tuning.

    python tools/benchmark.py [--methods all|NAME ...] [--arch b|tiny] [--img-size 224]
        [--batch 8] [--device cpu|cuda] [--amp none|bf16|fp16] [--frozen-dtype none|bf16]
        [--warmup 2] [--repeats 5]
        [--sdpa default|flash|efficient|cudnn|math] [--compile [BACKEND]]
        [--out docs/benchmark/cpu_vit-b16] [--profile hst dense_wst_hst]
        [--ops-only] [--no-counts]
        [--peak-tflops auto|989] [--timeout SECONDS] [--rounds 1]

For every method (classification backbones with a linear head, and the dense WST + HST
backbone): trainable and total backbone parameters, forward FLOPs and the FLOPs of a
training step's forward and backward (torch.utils.flop_counter: matrix products,
convolutions and attention, 2 per multiply-add), training step time (forward, backward,
AdamW step), peak memory of training (CUDA: allocated; CPU: resident-set growth), and
inference time (mergeable methods merged first) - each also as a ratio to the frozen
backbone's inference forward and to full fine-tuning, measured in one run with warm-up
and the median of repeats, plus throughput (images/s) and the TFLOP/s training and
inference reach (with --peak-tflops, the share of the device's peak; 'auto' looks the
peak up by the CUDA device's name). --sdpa pins the attention backend for everything
measured (the kernel that ran is reported); --compile times the model under
torch.compile (warm-up absorbs compilation, reported separately). --profile adds, for
the named methods, the operators that dominate a training step and the forward time of
each part of the model. A method name with '+cp' (e.g. rlrr+cp) checkpoints the frozen
blocks (with_cp=True): memory for time; 'all' includes the four methods whose memory is
closest to full fine-tuning with it. Each method runs in its own process; one that fails
(an attention backend that does not support it, out of memory, --timeout) is reported
with its error and the others go on. --rounds N measures the whole list N times in turns
(A B C, A B C, ...): each ratio is taken within its round, and the table gives the median
over rounds with the spread ((largest - smallest) / median), the check that two runs of
the same configuration agree. --frozen-dtype bf16 holds the frozen host weights of every
method (and of the frozen reference) in bf16, as a parameter-efficient run under bf16
autocast would: they are then read without a cast. --ops-only counts, instead of timing,
the operators a training step and an inference forward launch (the eager model's, one
kernel each on a GPU) and the graph breaks; with --compile also the kernels the compiled
model launches (on the CPU, the kernels inductor generates and the matrix products and
other library calls between them; on a GPU, the device's kernels). Writes Markdown, CSV,
JSON and a PNG chart.
"""

import argparse
import sys


def _peak(value: str):
    if value == 'auto':
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or TFLOP/s, got {value!r}") from None


def main(argv=None) -> int:
    from benchmarking import (
        CHECKPOINTED,
        COMPILE_MODES,
        METHODS,
        SDPA_BACKENDS,
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
    parser.add_argument(
        '--frozen-dtype',
        choices=['none', 'bf16', 'fp16'],
        default='none',
        help="hold every method's frozen host weights in this type (the hosts' frozen_dtype; "
        'full fine-tuning freezes nothing): with --amp of the same type they need no cast '
        'in any step, as a parameter-efficient run on a GPU would hold them',
    )
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--sdpa',
        choices=list(SDPA_BACKENDS),
        default='default',
        help='pin scaled-dot-product attention to one backend (torch.nn.attention.'
        "sdpa_kernel) for everything measured; 'default' lets PyTorch choose. A method the "
        'backend does not support is reported with its error (flash and cudnn need '
        '--amp bf16/fp16 on CUDA)',
    )
    parser.add_argument(
        '--compile',
        nargs='?',
        const='inductor',
        default=None,
        metavar='BACKEND[:MODE]',
        help='time the model under torch.compile (default backend: inductor); warm-up '
        '(at least 2 rounds) absorbs compilation, whose time is reported separately. '
        "inductor:MODE passes torch.compile's mode, e.g. inductor:reduce-overhead (the "
        'steps captured as CUDA graphs: no per-kernel launch cost on the host)',
    )
    parser.add_argument('--out', default='work_dirs/benchmark/results')
    parser.add_argument(
        '--profile', nargs='*', default=[], help='methods whose training step is profiled'
    )
    parser.add_argument(
        '--peak-tflops',
        type=_peak,
        help="the device's dense peak TFLOP/s at the measured precision (e.g. 989 for an "
        "H100 SXM in bf16), or 'auto' to look it up by the CUDA device's name (H100/H200 "
        'SXM: 989 bf16/fp16, 67 fp32), to report the share of it training and inference '
        'reach',
    )
    parser.add_argument(
        '--ops-only',
        action='store_true',
        help='only count operators per training step and inference forward and graph '
        'breaks (what a GPU would launch; the same on every machine, seconds per method); '
        'with --compile, also the kernels the compiled step and forward launch (a minute '
        'or more per method at ViT-B on a CPU: the compilation)',
    )
    parser.add_argument(
        '--no-counts',
        action='store_true',
        help='leave the operator counts and graph breaks out of a timing run (they are the '
        'same on every machine: take them from --ops-only, on any machine)',
    )
    parser.add_argument(
        '--timeout',
        type=float,
        help="seconds one method's process may run before it is ended and reported as failed",
    )
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='measure the whole list this many times in turns (A B C, A B C, ...) and report '
        'the median and spread of every timed figure over the rounds',
    )
    args = parser.parse_args(argv)
    if args.compile and ':' in args.compile:
        backend, _, mode = args.compile.partition(':')
        if backend != 'inductor' or mode not in COMPILE_MODES:
            parser.error(
                f'--compile {args.compile}: a mode goes with the inductor backend only, one of '
                f'{", ".join(f"inductor:{m}" for m in COMPILE_MODES)}'
            )
    if args.rounds < 1:
        parser.error(f'--rounds must be at least 1, got {args.rounds}')
    methods = [*METHODS, *CHECKPOINTED] if args.methods == ['all'] else args.methods
    references = ('frozen', 'full_finetune') + (('lora',) if args.ops_only else ())
    # the references of every ratio first, in this order
    methods = [m for m in references if m not in methods] + methods
    methods += [m for m in args.profile if m not in methods]
    results = run_all(
        methods,
        arch=args.arch,
        img_size=args.img_size,
        batch=args.batch,
        device=args.device,
        amp=args.amp,
        frozen_dtype=None if args.frozen_dtype == 'none' else args.frozen_dtype,
        warmup=args.warmup,
        repeats=args.repeats,
        profile=args.profile,
        peak_tflops=args.peak_tflops,
        timeout=args.timeout,
        sdpa=args.sdpa,
        compile=args.compile,
        ops_only=args.ops_only,
        counts=not args.no_counts,
        rounds=1 if args.ops_only else args.rounds,
    )
    warmup = max(args.warmup, 2) if args.compile else args.warmup  # as measure() does
    rounds = f', median of {args.rounds} rounds in turns' if args.rounds > 1 else ''
    sources = sorted({r['peak_source'] for r in results if r.get('peak_source')})
    peak = f'; peak: {", ".join(sources)}' if sources else ''
    frozen = f', frozen weights {args.frozen_dtype}' if args.frozen_dtype != 'none' else ''
    title = (
        f'ViT-{args.arch} {args.img_size}x{args.img_size}, batch {args.batch}, '
        f'{args.device}, amp {args.amp}{frozen}, sdpa {args.sdpa}, '
        f'compile {args.compile or "off"}, '
        f'median of {args.repeats} after {warmup} warm-up{rounds}{peak}; '
        f'{machine_description(args.device)}'
    )
    paths = write_outputs(results, args.out, title)
    print(open(paths[0]).read())
    failed = [r['method'] for r in results if 'error' in r]
    if failed:
        print(f'[benchmark] {len(failed)} of {len(results)} failed: {", ".join(failed)}')
    print('[benchmark] wrote ' + ', '.join(paths))
    return 0 if len(failed) < len(results) else 1


if __name__ == '__main__':
    sys.exit(main())
