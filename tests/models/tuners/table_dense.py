"""Dense-backbone rows of the shared tuner table: WST's branch and the HST-style side
network (or WST's pyramid) on the tiny ViT, through it and beside it, and LoRA inside it.

The rows carry their tuners as usual (none, or LoRA); the dense parts come with the host
kinds ``'dense'`` and ``'dense_beside'`` of table.py.
"""

from __future__ import annotations

from tests.models.tuners.table import DENSE_HST, VIT_ARCH, Case, blocks
from tests.models.tuners.table_hst import hst_parts
from tests.models.tuners.table_wst import _wst_count

DIM, LAYERS = VIT_ARCH['embed_dims'], VIT_ARCH['num_layers']


def _dense_count(kind: str, side: bool = True) -> int:
    """WST's branch, then the side network with one bridge per stage from the branch
    (``(D/4 + 1) C_s``), or the pyramid (transposed conv at D/4, a LayerNorm at D).
    Beside the ViT there are no meta tokens and the ViT's LayerNorms stay frozen."""
    total = _wst_count('vit')
    if not side:
        quarter = DIM // 4
        return total + 4 * quarter * quarter + quarter + 2 * DIM
    parts = hst_parts(DIM, LAYERS, DENSE_HST['channels'])
    if kind == 'dense_beside':
        parts.pop('meta_tokens')
        parts.pop('vit_norms')
    branch_bridges = sum((DIM // 4 + 1) * c for c in DENSE_HST['channels'])
    return total + sum(parts.values()) + branch_bridges


CASES = [
    Case('dense_wst_hst', [], True, True, _dense_count, hosts=('dense', 'dense_beside')),
    Case(
        'dense_wst_pyramid',
        [],
        True,
        True,
        lambda kind: _dense_count(kind, side=False),
        hosts=('dense', 'dense_beside'),
        extra=dict(hst=None),
    ),
    Case(
        'dense_lora',
        [dict(type='mmwst.LoRA', rank=4)],
        True,
        True,
        lambda kind: _dense_count(kind) + sum(2 * 4 * (d + d) for d, _ in blocks('vit')),
        hosts=('dense',),
    ),
]
