"""HST rows of the shared tuner table (ViT host only; a small side network)."""

from __future__ import annotations

import mmwst.models.tuners.hst  # noqa: F401  (registers mmwst.HST)
from tests.models.tuners.table import VIT_ARCH, Case

#: side-network widths and heads for the tiny host; the last width equals the host
#: width so that the table's shared linear head (in_features 32) fits the output
CHANNELS = [8, 12, 16, 32]
HEADS = [1, 2, 2, 4]
IMAGE_CHANNELS = 3


def hst_parts(dim: int, num_layers: int, channels: list[int], mlp_ratio: int = 4) -> dict:
    """Trainable parameters of HST, part by part, from the widths alone."""
    per_stage = num_layers // 4
    c1 = channels[0]
    stem = 9 * IMAGE_CHANNELS * c1 + 2 * c1 + (4 * c1 * c1 + c1) + 2 * c1
    embeds = sum(9 * a * b + b + 2 * b for a, b in zip(channels[:-1], channels[1:]))

    def side_block(c: int) -> int:
        hidden = mlp_ratio * c
        norms = 2 * (2 * c)
        attention = 4 * (c * c + c)  # q, k, v and the output projection
        mlp = (c * hidden + hidden) + (hidden * c + c)
        return norms + attention + mlp

    return {
        'stem': stem,
        'embeds': embeds,
        'side_blocks': per_stage * sum(side_block(c) for c in channels),
        'stage_norms': sum(2 * c for c in channels),
        'bridges': sum(dim * c + c for c in channels),
        'bridge_norms': per_stage * sum(2 * c for c in channels),
        'meta_tokens': num_layers * dim,
        'vit_norms': num_layers * 2 * (2 * dim),
    }


def _count(kind: str) -> int:
    return sum(hst_parts(VIT_ARCH['embed_dims'], VIT_ARCH['num_layers'], CHANNELS).values())


CASES = [
    Case(
        'hst',
        [dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS)],
        False,
        False,
        _count,
        hosts=('vit',),
    ),
]
