"""WST rows of the shared tuner table (ViT host only)."""

from __future__ import annotations

import mmwst.models.tuners.wst  # noqa: F401  (registers mmwst.WST)
from tests.models.tuners.table import GRID_HOSTS, Case, blocks, patch_dim, patch_size

#: image channels of the tiny hosts in table.py
IN_CHANNELS = 3


def _wst_count(kind: str, rank: int = 2) -> int:
    """Fine patch conv (C_in -> D / 4, kernel p / 2: 7 pixels at patch 14) plus D_l and
    U_l of every block."""
    side, kernel = patch_dim(kind) // 4, patch_size(kind) // 2
    conv = IN_CHANNELS * side * kernel * kernel + side
    return conv + sum((d * rank + rank) + (rank * d + d) for d, _ in blocks(kind))


CASES = [
    Case('wst', [dict(type='mmwst.WST')], False, False, _wst_count, hosts=GRID_HOSTS),
    Case(
        'wst_db2',
        [dict(type='mmwst.WST', wavelet='db2', scale=0.5)],
        False,
        False,
        _wst_count,
        hosts=GRID_HOSTS,
    ),
]
