"""Where each level of a dense backbone's pyramid looks in the image.

    python tools/pyramid_locality.py CONFIG [--size 128] [--seed 0] [--cfg-options ...]

Builds the config's backbone (its ``pretrained`` weights read, the trained parts at
their initialisation) and, for a few positions ``(i, j)`` of every level, takes the
gradient of ``sum_c |map[c, i, j]|`` with respect to a random image. Its absolute value
is the position's receptive field; the tool prints the field's centroid against the
position's own centre in the image, ``((i + 1/2) s, (j + 1/2) s)`` at stride ``s``, and
the share of the field within two strides of that centre. A level whose maps were
transposed, shifted or resampled on the wrong grid shows a centroid away from its
target; a square input hides such faults from every shape check.
"""

import argparse
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope


def positions(height: int, width: int) -> list[tuple[int, int]]:
    """Four positions of a ``height x width`` grid: three quadrants and the centre."""
    return [
        (height // 4, width // 4),
        (height // 4, 3 * width // 4),
        (3 * height // 4, width // 4),
        (height // 2, width // 2),
    ]


def receptive_fields(backbone, size: int, seed: int) -> list[dict]:
    """Per level: its shape, stride and, per position, the target, the centroid and the
    share of the field near the target."""
    torch.manual_seed(seed)
    image = torch.randn(1, 3, size, size, requires_grad=True)
    maps = backbone(image)
    ys = torch.arange(size, dtype=torch.float32).view(-1, 1) + 0.5
    xs = torch.arange(size, dtype=torch.float32).view(1, -1) + 0.5
    levels = []
    for fmap in maps:
        _, _, height, width = fmap.shape
        stride_y, stride_x = size / height, size / width
        rows = []
        for i, j in positions(height, width):
            (grad,) = torch.autograd.grad(fmap[0, :, i, j].abs().sum(), image, retain_graph=True)
            field = grad.abs().sum(1)[0]
            field = field / field.sum()
            target = ((i + 0.5) * stride_y, (j + 0.5) * stride_x)
            centroid = ((field * ys).sum().item(), (field * xs).sum().item())
            near = ((ys - target[0]).abs() <= 2 * stride_y) & (
                (xs - target[1]).abs() <= 2 * stride_x
            )
            rows.append(
                dict(
                    position=(i, j), target=target, centroid=centroid, near=field[near].sum().item()
                )
            )
        levels.append(dict(shape=tuple(fmap.shape), stride=(stride_y, stride_x), positions=rows))
    return levels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--size', type=int, default=128, help='side of the random image')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)

    import mmwst  # noqa: F401  (registers the backbones)

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(args.seed)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    backbone.eval()
    for level, found in enumerate(receptive_fields(backbone, args.size, args.seed)):
        cells = '; '.join(
            f'({p["position"][0]},{p["position"][1]}) target ({p["target"][0]:.0f},'
            f'{p["target"][1]:.0f}) centroid ({p["centroid"][0]:.0f},{p["centroid"][1]:.0f}) '
            f'near {p["near"]:.2f}'
            for p in found['positions']
        )
        print(f'level {level} {found["shape"]}, stride {found["stride"][0]:g}: {cells}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
