"""Normalisation layers for feature maps."""

from __future__ import annotations

from torch import Tensor, nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (``normalized_shape`` = channels).

    Examples:
        >>> import torch
        >>> norm = LayerNorm2d(8)
        >>> out = norm(torch.randn(2, 8, 4, 5))
        >>> out.shape, bool(out.mean(dim=1).abs().max() < 1e-5)
        (torch.Size([2, 8, 4, 5]), True)
    """

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, H, W) -> (B, H, W, C) -> normalise C -> (B, C, H, W)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
