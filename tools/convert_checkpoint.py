"""Convert pretrained ViT weights to an mmpretrain VisionTransformer checkpoint.

    python tools/convert_checkpoint.py SRC DST [--format auto|npz|timm|mae|mmpretrain]
                                       [--fc-norm-to ln1|ln2]

SRC is a local file (nothing is downloaded): a Google npz (``ViT-B_16.npz``, AugReg or
big_vision exports), a timm state dict (.pth/.bin/.safetensors), an MAE release
checkpoint, or an mmpretrain/mmengine checkpoint. DST receives ``{'state_dict': ...}``
with mmpretrain ``VisionTransformer`` names; it loads with
``torch.load(weights_only=True)`` and can be given to a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=DST)``. A summary says which layout was
detected, how many tensors were written and which source keys were left out.
"""

import argparse
import os
import os.path as osp
import sys

import torch

try:
    from mmwst.models.backbones import convert
except ModuleNotFoundError as err:  # run from a checkout without installing mmwst
    if err.name != 'mmwst':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmwst.models.backbones import convert


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'src', help='local checkpoint to convert (.npz, .pth, .pt, .bin, .ckpt or .safetensors)'
    )
    parser.add_argument('dst', help='where to write the mmpretrain checkpoint (.pth)')
    parser.add_argument(
        '--format',
        default='auto',
        choices=('auto',) + convert.FORMATS,
        help='layout of SRC (default: detect it from the keys)',
    )
    parser.add_argument(
        '--fc-norm-to',
        default='ln1',
        choices=('ln1', 'ln2'),
        help="where a timm/MAE 'fc_norm' goes when SRC has no final 'norm': "
        "the final norm 'ln1' (default) or the pooled-feature norm 'ln2' "
        "(for out_type='avg_featmap', final_norm=False)",
    )
    return parser.parse_args(argv)


def summarise_keys(keys: list[str], limit: int = 10) -> str:
    """List a few keys in full, or count them per top-level module when there are many."""
    if not keys:
        return 'none'
    if len(keys) <= limit:
        return f'{len(keys)} keys: {", ".join(keys)}'
    groups: dict[str, int] = {}
    for key in keys:
        top = key.replace('/', '.').split('.')[0]
        groups[top] = groups.get(top, 0) + 1
    return f'{len(keys)} keys in ' + ', '.join(f'{top}.* ({n})' for top, n in groups.items())


def main(argv=None) -> int:
    args = parse_args(argv)
    if osp.exists(args.src) and osp.exists(args.dst) and osp.samefile(args.src, args.dst):
        print(f'error: DST is the same file as SRC ({args.src})', file=sys.stderr)
        return 2
    try:
        source = convert.read_checkpoint(args.src)
        result = convert.convert_vit_report(source, args.format, fc_norm_to=args.fc_norm_to)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1

    state_dict = {key: value.contiguous() for key, value in result.state_dict.items()}
    parent = osp.dirname(osp.abspath(args.dst))
    os.makedirs(parent, exist_ok=True)
    torch.save({'state_dict': state_dict}, args.dst)
    torch.load(args.dst, map_location='cpu', weights_only=True)  # proves it loads safely

    detected = 'detected' if args.format == 'auto' else 'given'
    num_values = sum(value.numel() for value in state_dict.values())
    layers = {key.split('.')[1] for key in state_dict if key.startswith('layers.')}
    print(f'source:  {args.src}')
    print(f'format:  {result.fmt} ({detected})')
    print(f'tensors: {len(state_dict)} ({num_values / 1e6:.2f}M values, {len(layers)} layers)')
    print(f'ignored: {summarise_keys(result.ignored)}')
    for note in result.notes:
        print(f'note:    {note}')
    print(f'wrote {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
