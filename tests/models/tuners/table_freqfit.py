"""FreqFit's rows of the shared tuner table (see table.py).

FreqFit alone (complex and real filters) and combined with LoRA and with RLRR.
"""

import mmwst.models.tuners.freqfit  # noqa: F401  (registers mmwst.FreqFit)
import mmwst.models.tuners.rlrr  # noqa: F401  (registers mmwst.RLRR)
from tests.models.tuners.table import GRID_HOSTS, VIT_HOSTS, Case, blocks, mlp_widths, registers
from tests.models.tuners.table_rlrr import rlrr_count

GRID = (4, 4)  # the tiny ViT's default patch grid: 32 / 8


def freqfit_count(kind: str, parts: int = 2) -> int:
    """L + 1 filters of (h, w // 2 + 1, D[, 2]) plus gamma and beta, from the widths."""
    h, w = GRID
    dims = [d for d, _ in blocks(kind)]
    dims.append(dims[-1])  # the position after the last block
    return sum(h * (w // 2 + 1) * d * parts + 2 * d for d in dims)


def freqfit_1d_count(kind: str, extra_tokens: int = 0) -> int:
    """L + 1 filters of ((registers + h w + extra) // 2 + 1, D, 2), no scale or shift."""
    h, w = GRID
    dims = [d for d, _ in blocks(kind)]
    dims.append(dims[-1])
    length = registers(kind) + h * w + extra_tokens
    return sum((length // 2 + 1) * d * 2 for d in dims)


def lora_all_count(kind: str, rank: int = 2) -> int:
    return sum(rank * (4 * (d + d) + (d + f1) + (f2 + d)) for d, f1, f2 in mlp_widths(kind))


CASES = [
    Case('freqfit_complex', [dict(type='mmwst.FreqFit')], False, False, freqfit_count, GRID_HOSTS),
    Case(
        'freqfit_real',
        [dict(type='mmwst.FreqFit', filter_type='real')],
        False,
        False,
        lambda k: freqfit_count(k, parts=1),
        GRID_HOSTS,
    ),
    Case(
        'freqfit_lora',
        [
            dict(type='mmwst.LoRA', rank=2, targets=('q', 'k', 'v', 'proj', 'fc1', 'fc2')),
            dict(type='mmwst.FreqFit'),
        ],
        False,
        False,
        lambda k: lora_all_count(k) + freqfit_count(k),
        GRID_HOSTS,
    ),
    Case(
        'freqfit_rlrr',
        [dict(type='mmwst.RLRR'), dict(type='mmwst.FreqFit')],
        False,
        False,
        lambda k: rlrr_count(k) + freqfit_count(k),
        GRID_HOSTS,
    ),
    Case(
        'freqfit_1d',
        [dict(type='mmwst.FreqFit', mode='1d')],
        False,
        False,
        freqfit_1d_count,
        GRID_HOSTS,
    ),
    Case(
        'freqfit_1d_vpt_deep',
        [
            dict(type='mmwst.VPT', num_prompts=3, deep=True),
            dict(type='mmwst.FreqFit', mode='1d', extra_tokens=3),
        ],
        False,
        False,
        lambda k: 4 * 3 * 32 + freqfit_1d_count(k, extra_tokens=3),
        VIT_HOSTS,  # VPT adds tokens: not on SAM
    ),
]
