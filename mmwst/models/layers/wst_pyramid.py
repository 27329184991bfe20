"""Four maps at strides 4 / 8 / 16 / 32 from WST's branch and the ViT (dense, WST only)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .norm import LayerNorm2d
from .resize import resize_map

OUT_STRIDES = (4, 8, 16, 32)


def wst_pyramid_count(embed_dims: int, fine_only: bool = False) -> int:
    """Trainable parameters of :class:`WSTPyramid`: ``(D/4)^2 * 4 + D/4`` (transposed
    conv) ``+ 2 D`` (LayerNorm); ViT-B/16: 149,232 (``fine_only``: 147,648, no
    LayerNorm)."""
    quarter = embed_dims // 4
    return 4 * quarter * quarter + quarter + (0 if fine_only else 2 * embed_dims)


class WSTPyramid(nn.Module):
    """The pyramid of the dense backbone without a side network.

    For patch size p (grid h x w), the sources are WST's final branch state ``S_L``
    ``(B, D/4, 2h, 2w)`` at stride p/2; a 2x transposed convolution of it (stride p/4);
    the last block's patch map ``(B, D, h, w)`` through a trainable LayerNorm (stride p);
    and 2x max-pooling of that (stride 2p). At p = 16 these are exactly strides 4 / 8 /
    16 / 32. At any other patch size each map is resampled to its target grid
    ``ceil(H / s) x ceil(W / s)`` (bilinear when it must grow, adaptive max-pooling when
    it must shrink), so the strides hold for every patch size (8, 14, 32...).

    With ``fine_only=True`` it makes the two fine maps alone (strides 4 and 8, from the
    branch), for the dense backbone's ``pyramid='mixed'``, whose coarse maps are the side
    network's; it then has no LayerNorm.

    Args:
        embed_dims (int): ViT width ``D``; the maps are ``(D/4, D/4, D, D)`` wide.
        fine_only (bool): Only the maps at strides 4 and 8. Defaults to False.

    Parameters: ``(D/4)^2 * 4 + D/4`` (transposed conv) ``+ 2 D`` (LayerNorm); ViT-B/16:
    149,232 (``fine_only``: 147,648).
    """

    def __init__(self, embed_dims: int, fine_only: bool = False) -> None:
        super().__init__()
        quarter = embed_dims // 4
        self.up = nn.ConvTranspose2d(quarter, quarter, kernel_size=2, stride=2)
        self.norm = None if fine_only else LayerNorm2d(embed_dims)
        levels = 2 if fine_only else 4
        self.out_channels = (quarter, quarter, embed_dims, embed_dims)[:levels]
        self.out_strides = OUT_STRIDES[:levels]

    def reset_parameters(self) -> None:
        self.up.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(
        self, branch: Tensor, patches: Tensor | None, image_size: tuple[int, int]
    ) -> tuple[Tensor, ...]:
        """Maps from ``S_L`` ``(B, D/4, 2h, 2w)`` and the last patch map ``(B, h, w, D)``
        (``fine_only``: ``patches`` is not read and may be None)."""
        maps = (self.up(branch), branch)
        if self.norm is not None:
            grid = self.norm(patches.permute(0, 3, 1, 2))  # (B, h, w, D) -> (B, D, h, w)
            coarse = F.max_pool2d(grid, kernel_size=2, stride=2, ceil_mode=True)
            maps += (grid, coarse)
        return resample_to_strides(maps, OUT_STRIDES, image_size)


def resample_to_strides(
    maps: tuple[Tensor, ...], strides: tuple[int, ...], image_size: tuple[int, int]
) -> tuple[Tensor, ...]:
    """Each map on the grid of its stride for an image of ``image_size``,
    ``ceil(H / s) x ceil(W / s)`` (what detectors and segmentors assume at that stride)."""
    height, width = image_size
    return tuple(_resample(m, (-(-height // s), -(-width // s))) for m, s in zip(maps, strides))


def _resample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``x`` on a grid of ``size``: unchanged when it already is, else resized."""
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_max_pool2d(x, size)
    return resize_map(x, size)
