"""Table row for Mona: two adapters per block on every ViT-like host and Swin (not SAM's
windowed encoder)."""

from __future__ import annotations

import mmwst.models.tuners.mona  # noqa: F401  (registers Mona)
from tests.models.tuners.table import TOKEN_HOSTS, Case, blocks

BOTTLENECK = 8


def _mona(kind: str) -> int:
    """Per adapter, counted layer by layer as the release builds it: project1 (d x r + r),
    project2 (r x d + d), three depthwise convolutions with bias (r (9 + 25 + 49) + 3 r),
    the 1x1 projector (r x r + r), the LayerNorm (2 d), gamma and gamma_x (d each); two
    adapters per block."""
    r = BOTTLENECK
    per = lambda d: (d * r + r) + (r * d + d) + r * (9 + 25 + 49) + 3 * r + (r * r + r) + 4 * d  # noqa: E731
    return sum(2 * per(d) for d, _ in blocks(kind))


CASES = [
    Case(
        'mona',
        [dict(type='mmwst.Mona', bottleneck=BOTTLENECK)],
        False,
        False,
        _mona,
        hosts=TOKEN_HOSTS,
    )
]
