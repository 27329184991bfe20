"""Peak training memory of large frozen hosts, float32 against frozen weights in bf16.

    python tools/host_memory.py [--arch dinov2-l dinov2-g] [--method lora dense]
        [--dtype fp32 bf16] [--size 224] [--out docs/benchmark/host_memory_cpu.json]

Each (host, method, dtype) runs in a fresh process: the model is built with random
weights (memory does not depend on their values), one training step at batch 1 warms
up, and the next is measured:

* ``weights_mb``: every parameter, frozen and trainable, as stored;
* ``step_peak_mb``: the most tensor memory the step holds at once on top of the weights
  (activations, gradients, temporaries; counted from the profiler's allocations) plus
  the AdamW state;
* ``peak_mb`` = the two together: the training step's peak tensor memory;
* ``max_rss_mb``: the process's resident-set peak (allocator caches and the Python
  runtime included).

Methods: ``lora`` (r = 8 on q and v, the class token into a linear head) and ``dense``
(:class:`~mmwst.models.backbones.DenseTunedViT`, WST + HST with the default widths,
through the ViT; a 1x1 head on each map).
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)


def build(arch: str, method: str, dtype: str, size: int):
    import torch
    from torch import nn

    from mmwst.models.backbones import DenseTunedViT, TunedVisionTransformer

    frozen = None if dtype == 'fp32' else dtype
    if method == 'lora':
        backbone = TunedVisionTransformer(
            arch=arch,
            img_size=size,
            tuners=[dict(type='mmwst.LoRA', rank=8, targets=('q', 'v'))],
            frozen_dtype=frozen,
        )
        head = nn.Linear(backbone.embed_dims, 10)

        def loss_of(x):
            return head(backbone(x)[0]).logsumexp(dim=-1).mean()

    elif method == 'dense':
        backbone = DenseTunedViT(arch=arch, img_size=size, frozen_dtype=frozen)
        head = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in backbone.out_channels)

        def loss_of(x):
            return sum(h(m).square().mean() for h, m in zip(head, backbone(x)))

    else:
        raise ValueError(f'unknown method {method!r}: lora or dense')
    backbone.train()
    params = [p for p in (*backbone.parameters(), *head.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    return backbone, head, loss_of, optimizer


def worker(arch: str, method: str, dtype: str, size: int) -> dict:
    import torch
    from benchmarking.measure import peak_tensor_mb

    torch.manual_seed(0)
    backbone, head, loss_of, optimizer = build(arch, method, dtype, size)
    image = torch.randn(1, 3, size, size)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_of(image).backward()
        optimizer.step()

    step()  # warm-up: the optimizer state exists from here on
    step_peak = peak_tensor_mb(step, optimizer)
    modules = (backbone, head)
    weights = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
    trainable = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
    frozen = sum(p.numel() for m in modules for p in m.parameters() if not p.requires_grad)
    return dict(
        arch=arch,
        method=method,
        dtype=dtype,
        size=size,
        frozen_params=frozen,
        trainable_params=trainable,
        weights_mb=round(weights / 2**20, 1),
        step_peak_mb=round(step_peak, 1),
        peak_mb=round(weights / 2**20 + step_peak, 1),
        max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', nargs='+', default=['dinov2-l', 'dinov2-g'])
    parser.add_argument('--method', nargs='+', default=['lora', 'dense'])
    parser.add_argument('--dtype', nargs='+', default=['fp32', 'bf16'])
    parser.add_argument('--size', type=int, default=224, help='square input side')
    parser.add_argument('--out', help='write the rows to this JSON file')
    parser.add_argument(
        '--worker', nargs=3, metavar=('ARCH', 'METHOD', 'DTYPE'), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.size)))
        return 0
    rows = []
    for arch in args.arch:
        for method in args.method:
            for dtype in args.dtype:
                command = [sys.executable, __file__, '--worker', arch, method, dtype]
                command += ['--size', str(args.size)]
                proc = subprocess.run(command, capture_output=True, text=True, env=os.environ)
                if proc.returncode:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return proc.returncode
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(
                    f'{arch:9s} {method:6s} {dtype:5s} weights {row["weights_mb"]:9.1f} MB  '
                    f'step {row["step_peak_mb"]:8.1f} MB  peak {row["peak_mb"]:9.1f} MB  '
                    f'max RSS {row["max_rss_mb"]:9.1f} MB',
                    flush=True,
                )
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
