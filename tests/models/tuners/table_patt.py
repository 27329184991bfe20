"""Table rows for PATT (each mode), prefix tuning, and PATT + AdaptFormer (BAPAT)."""

from __future__ import annotations

from functools import partial

import mmwst.models.tuners.patt  # noqa: F401  (registers PATT)
import mmwst.models.tuners.prefix  # noqa: F401  (registers PrefixTuning)
from tests.models.tuners.table import TOKEN_HOSTS, Case, blocks

RANK, TOKENS, HIDDEN, BOTTLENECK = 4, 3, 8, 8


def _patt(kind: str, slots: int = 2) -> int:
    """W_down (d x r) + b_down (r) + W_up (r x slots*d) + b_up (slots*d), per block."""
    return sum(d * RANK + RANK + RANK * slots * d + slots * d for d, _ in blocks(kind))


def _prefix(kind: str) -> int:
    """Embedding (P x d) + Linear(d, h) + Linear(h, 2d), per block."""
    return sum(TOKENS * d + d * HIDDEN + HIDDEN + HIDDEN * 2 * d + 2 * d for d, _ in blocks(kind))


def _adaptformer(kind: str) -> int:
    return sum(2 * d * BOTTLENECK + BOTTLENECK + d for d, _ in blocks(kind))


def _patt_row(mode: str) -> Case:
    return Case(
        f'patt_{mode}',
        [dict(type='mmwst.PATT', rank=RANK, mode=mode)],
        False,
        False,
        partial(_patt, slots=len(mode)),
    )


CASES = [
    *(_patt_row(mode) for mode in ('kv', 'qv', 'qk', 'qkv')),
    Case(
        'prefix',
        [dict(type='mmwst.PrefixTuning', num_tokens=TOKENS, hidden=HIDDEN)],
        False,
        False,
        _prefix,
        hosts=TOKEN_HOSTS,
    ),
]

CASES.append(
    Case(
        'patt_adaptformer',
        [
            dict(type='mmwst.PATT', rank=RANK, scale=0.8),
            dict(type='mmwst.AdaptFormer', bottleneck=BOTTLENECK, scale=0.1),
        ],
        False,
        False,
        lambda k: _patt(k) + _adaptformer(k),
    )
)
