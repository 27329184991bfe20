"""mmdet's FCNMaskHead against mmwst.ShuffleFCNMaskHead, side by side in one run.

    python tools/mask_head_speed.py [--threads 1] [--repeats 20] [--rois 128] [--width 64]

Times forward and backward of both heads, in turns (one call of each per round), on the
same regions (by default those of the shapes demo's detector late in training: 128
positive regions - 16 per image, 8 images - of 14x14 cells and 64 channels, two 3x3
convolutions, 3 classes), checks that they agree, and prints the medians with their ratio.
Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _passes(head, x: torch.Tensor) -> tuple[float, float]:
    x = x.detach().requires_grad_()
    start = time.perf_counter()
    out = head(x)
    middle = time.perf_counter()
    out.sum().backward()
    return middle - start, time.perf_counter() - middle


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--rois', type=int, default=128)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--convs', type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead

    from mmwst.models.mask_head import ShuffleFCNMaskHead

    torch.manual_seed(0)
    shape = dict(
        num_convs=args.convs, in_channels=args.width, conv_out_channels=args.width, num_classes=3
    )
    theirs, ours = FCNMaskHead(**shape), ShuffleFCNMaskHead(**shape)
    theirs.init_weights()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(args.rois, args.width, 14, 14)
    gap = (theirs(x) - ours(x)).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f'the two heads disagree by {gap:.2e}')
    times = {'mmdet': [], 'shuffle': []}
    for i in range(args.repeats + 1):
        for name, head in (('mmdet', theirs), ('shuffle', ours)):
            passes = _passes(head, x)
            if i:  # the first round warms up
                times[name].append(passes)
    print(
        f'{args.rois} regions of {args.width} x 14 x 14, {args.convs} convolutions, '
        f'{args.threads} thread(s), medians of {args.repeats} rounds'
    )
    print(f'{"pass":>9} {"mmdet (ms)":>11} {"shuffle (ms)":>13} {"ratio":>7}')
    for index, name in enumerate(('forward', 'backward')):
        a = statistics.median(t[index] for t in times['mmdet'])
        b = statistics.median(t[index] for t in times['shuffle'])
        print(f'{name:>9} {a * 1e3:>11.1f} {b * 1e3:>13.1f} {b / a:>6.2f}x')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
