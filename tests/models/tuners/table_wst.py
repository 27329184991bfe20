"""WST rows of the shared tuner table (ViT host only)."""

from __future__ import annotations

import mmwst.models.tuners.wst  # noqa: F401  (registers mmwst.WST)
from tests.models.tuners.table import Case, blocks, patch_dim

#: input channels and patch size of the tiny ViT host in table.py
IN_CHANNELS, PATCH = 3, 8


def _wst_count(kind: str, rank: int = 2) -> int:
    """Fine patch conv (C_in -> D / 4, kernel p / 2) plus D_l and U_l of every block."""
    side, kernel = patch_dim(kind) // 4, PATCH // 2
    conv = IN_CHANNELS * side * kernel * kernel + side
    return conv + sum((d * rank + rank) + (rank * d + d) for d, _ in blocks(kind))


CASES = [
    Case('wst', [dict(type='mmwst.WST')], False, False, _wst_count, hosts=('vit',)),
    Case(
        'wst_db2',
        [dict(type='mmwst.WST', wavelet='db2', scale=0.5)],
        False,
        False,
        _wst_count,
        hosts=('vit',),
    ),
]
