"""Rewrite a trusted checkpoint so that it loads with torch.load(weights_only=True).

mmwst loads every checkpoint with ``weights_only=True``. A checkpoint written by plain
mmengine (or an older OpenMMLab release) may hold pickled Python objects and is then
refused. If - and only if - you trust the file's origin, convert it once:

    python tools/sanitize_checkpoint.py IN.pth OUT.pth --trust-source

Tensors, numbers, strings and containers are kept; mmengine's message-hub buffers and
numpy arrays are stored in mmwst's tensor form; any other object in ``meta`` becomes its
string form. The result is verified by re-loading it with ``weights_only=True``.
"""

import argparse
import sys

import torch

from mmwst.engine.checkpoint import load_local_checkpoint, to_weights_only


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint to convert')
    parser.add_argument('dst', help='where to write the weights-only copy')
    parser.add_argument(
        '--trust-source',
        action='store_true',
        help='confirm that you trust SRC: it is unpickled with '
        'weights_only=False, which can run code stored in the file',
    )
    args = parser.parse_args(argv)
    if not args.trust_source:
        parser.error(
            'refusing to unpickle SRC without --trust-source: loading it runs any '
            'code it contains. Pass --trust-source only for files you trust.'
        )
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, dict):
        parser.error(
            f'{args.src} holds a {type(checkpoint).__name__}, expected a dict '
            '(a state dict or an mmengine checkpoint)'
        )
    safe = {key: to_weights_only(value, strict=False) for key, value in checkpoint.items()}
    torch.save(safe, args.dst)
    load_local_checkpoint(args.dst)  # proves the copy loads with weights_only=True
    print(f'wrote {args.dst} (loads with weights_only=True)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
