"""HST rows of the shared tuner table (ViT host only; a small side network)."""

from __future__ import annotations

import mmwst.models.tuners.hst  # noqa: F401  (registers mmwst.HST)
from tests.models.tuners.table import VIT_ARCH, VIT_HOSTS, Case

#: side-network widths and heads for the tiny host; the last width equals the host
#: width so that the table's shared linear head (in_features 32) fits the output
CHANNELS = [8, 12, 16, 32]
HEADS = [1, 2, 2, 4]
IMAGE_CHANNELS = 3


def hst_parts(
    dim: int,
    num_layers: int,
    channels: list[int],
    mlp_ratio: int = 4,
    depths: tuple[int, ...] | None = None,
    num_meta: int = 1,
) -> dict:
    """Trainable parameters of HST, part by part, from the widths alone: ``depths`` ViT
    layers (= side blocks) per stage (default: equal groups), ``num_meta`` meta tokens
    per layer."""
    depths = depths or (num_layers // 4,) * 4
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
        'side_blocks': sum(k * side_block(c) for k, c in zip(depths, channels)),
        'stage_norms': sum(2 * c for c in channels),
        'bridges': sum(dim * c + c for c in channels),
        'bridge_norms': sum(k * 2 * c for k, c in zip(depths, channels)),
        'meta_tokens': num_meta * num_layers * dim,
        'vit_norms': num_layers * 2 * (2 * dim),
    }


def _count(kind: str, num_meta: int = 1) -> int:
    parts = hst_parts(VIT_ARCH['embed_dims'], VIT_ARCH['num_layers'], CHANNELS, num_meta=num_meta)
    return sum(parts.values())


CASES = [
    Case(
        'hst',
        [dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS)],
        False,
        False,
        _count,
        hosts=VIT_HOSTS,
    ),
    Case(
        'hst_3_meta_tokens',
        [dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS, num_meta_tokens=3)],
        False,
        False,
        lambda kind: _count(kind, num_meta=3),
        hosts=VIT_HOSTS,
    ),
]


def record_side_keys(side) -> list:
    """Make ``side`` (an :class:`~mmwst.models.layers.HSTSide`) record the key tokens
    that each layer hands its :meth:`step_tokens`; returns the list they go into."""
    keys = []
    step = side.step_tokens

    def read_the_key(state, index, image, tokens, num_keys, *rest):
        keys.append(tokens[:, :num_keys])
        return step(state, index, image, tokens, num_keys, *rest)

    side.step_tokens = read_the_key
    return keys
