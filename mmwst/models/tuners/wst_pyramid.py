"""A feature pyramid from WST's fine branch and the ViT tokens (dense, WST only)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..necks.simple_pyramid import LayerNorm2d
from .base import BaseTuner, TokenContext
from .wst import WST_STATES

OUT_STRIDES = (4, 8, 16, 32)


@MODELS.register_module()
class WSTPyramid(BaseTuner):
    """Four maps at strides 4 / 8 / 16 / 32 from WST's last branch state and the ViT.

    The dense backbone without a side network (``mmwst.DenseTunedViT(hst=None)``). For
    patch size p (grid h x w), the sources are: WST's final branch state ``S_L``
    ``(B, D/4, 2h, 2w)`` at stride p/2; a 2x transposed convolution of it (stride p/4);
    the last block's patch tokens as a map ``(B, D, h, w)`` through a trainable LayerNorm
    (stride p); and 2x max-pooling of that (stride 2p). At p = 16 these are exactly
    strides 4 / 8 / 16 / 32. At any other patch size each map is resampled to its target
    grid ``ceil(H / s) x ceil(W / s)`` (bilinear when it must grow, adaptive max-pooling
    when it must shrink), so the strides hold for every patch size (8, 14, 32...).
    Output widths ``(D/4, D/4, D, D)``. Needs ``mmwst.WST`` earlier in the tuner list.

    Parameters: ``(D/4)^2 * 4 + D/4`` (transposed conv) ``+ 2 D`` (LayerNorm); ViT-B/16:
    149,232.
    """

    def build(self, host) -> None:
        dim = host.embed_dims
        self.up = nn.ConvTranspose2d(dim // 4, dim // 4, kernel_size=2, stride=2)
        self.norm = LayerNorm2d(dim)
        self.out_channels = (dim // 4, dim // 4, dim, dim)
        self.reset_parameters()

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Strides of the four maps relative to the input image (any patch size)."""
        return OUT_STRIDES

    def reset_parameters(self) -> None:
        self.up.reset_parameters()
        self.norm.reset_parameters()

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        states = ctx.state.get(WST_STATES)
        if states is None:
            raise ValueError('WSTPyramid reads the WST branch: list mmwst.WST before it')
        if ctx.output is not None:
            raise ValueError('another tuner already replaced the backbone output')
        h, w = ctx.patch_resolution
        fine = states[-1]  # S_L: (B, D/4, 2h, 2w)
        # (B, h*w, D) -> (B, D, h*w) -> (B, D, h, w)
        grid = x[:, ctx.num_prefix :].transpose(1, 2).reshape(x.shape[0], -1, h, w)
        grid = self.norm(grid)
        coarse = F.max_pool2d(grid, kernel_size=2, stride=2, ceil_mode=True)
        height, width = ctx.image.shape[-2:]
        maps = (self.up(fine), fine, grid, coarse)
        ctx.output = tuple(
            _resample(m, (-(-height // s), -(-width // s))) for m, s in zip(maps, OUT_STRIDES)
        )
        return x


def _resample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``x`` on a grid of ``size``: unchanged when it already is, else resized."""
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_max_pool2d(x, size)
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
