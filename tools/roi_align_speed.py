"""mmcv's RoIAlign kernel against mmwst.SeparableRoIAlign, side by side in one run.

    python tools/roi_align_speed.py [--threads 1] [--repeats 10] [--map 32] [--rois 512]

Times forward and backward of both on the same map and regions (by default those of the
shapes demo's detector: a batch of 8 maps of 64 channels and 32x32 cells at stride 4,
512 regions of 20-60 pixels, 7x7 box and 14x14 mask outputs, adaptive sampling), checks
that they agree, and prints each time with the ratio. Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time(layer, feats: torch.Tensor, rois: torch.Tensor, repeats: int) -> tuple[float, float]:
    forward, backward = [], []
    for i in range(repeats + 1):
        x = feats.detach().requires_grad_()
        start = time.perf_counter()
        out = layer(x, rois)
        middle = time.perf_counter()
        out.sum().backward()
        end = time.perf_counter()
        if i:  # the first call warms up
            forward.append(middle - start)
            backward.append(end - middle)
    return statistics.median(forward), statistics.median(backward)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--map', type=int, default=32, help='map side in cells (stride 4)')
    parser.add_argument('--rois', type=int, default=512)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmcv.ops import RoIAlign

    from mmwst.models.layers.roi_align import SeparableRoIAlign

    generator = torch.Generator().manual_seed(0)
    side = args.map * 4
    feats = torch.randn(8, 64, args.map, args.map, generator=generator)
    corner = torch.rand(args.rois, 2, generator=generator) * (side - 60)
    size = 20 + 40 * torch.rand(args.rois, 2, generator=generator)
    image = torch.sort(torch.randint(0, 8, (args.rois,), generator=generator)).values
    rois = torch.cat([image[:, None].float(), corner, corner + size], dim=1)
    print(
        f'{args.rois} regions on 8 maps of 64 x {args.map} x {args.map}, {args.threads} thread(s)'
    )
    print(f'{"output":>8} {"pass":>9} {"mmcv (ms)":>10} {"separable (ms)":>15} {"ratio":>7}')
    for output in (7, 14):
        kernel = RoIAlign(output, 0.25, 0, aligned=True)
        separable = SeparableRoIAlign(output, 0.25, 0, aligned=True)
        gap = (kernel(feats, rois) - separable(feats, rois)).abs().max().item()
        if gap > 1e-4:
            raise SystemExit(f'the two disagree by {gap:.2e} at output {output}')
        theirs, ours = (
            _time(kernel, feats, rois, args.repeats),
            _time(separable, feats, rois, args.repeats),
        )
        size = f'{output}x{output}'
        for name, a, b in zip(('forward', 'backward'), theirs, ours):
            print(f'{size:>8} {name:>9} {a * 1e3:>10.1f} {b * 1e3:>15.1f} {b / a:>6.2f}x')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
