"""The two fine maps (strides 4 and 8) from the ViT's last patch map (dense, WST + HST)."""

from __future__ import annotations

from torch import Tensor, nn

from .norm import LayerNorm2d
from .wst_pyramid import OUT_STRIDES, resample_to_strides


def vit_levels_count(embed_dims: int) -> int:
    """Trainable parameters of :class:`ViTFineLevels`: ``2 D`` (LayerNorm) ``+ 2 D^2 +
    D/2`` (transposed conv ``D -> D/2``); ViT-B/16: 1,181,568; ViT-T/8 (D = 128):
    33,088."""
    half = embed_dims // 2
    return 2 * embed_dims + 4 * embed_dims * half + half


class ViTFineLevels(nn.Module):
    """Maps at strides 4 and 8 from the last block's patch map, for the dense backbone's
    ``pyramid='vit'`` (its maps at strides 16 and 32 are the side network's).

    The last patch map ``(B, h, w, D)`` (stride p, as the tuners leave it) through a
    trainable LayerNorm, and a 2x transposed convolution of that to ``D/2`` channels
    (stride p/2) - the two finest maps of a simple feature pyramid (ViTDet). At p = 8 they
    are exactly strides 4 and 8; at any other patch size each is resampled to its target
    grid ``ceil(H / s) x ceil(W / s)`` (bilinear when it must grow, adaptive max-pooling
    when it must shrink), so at p = 16 both are upsampled 2x.

    Args:
        embed_dims (int): ViT width ``D``; the maps are ``(D/2, D)`` wide.

    Parameters: ``2 D + 2 D^2 + D/2`` (:func:`vit_levels_count`).
    """

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(embed_dims)
        self.up = nn.ConvTranspose2d(embed_dims, embed_dims // 2, kernel_size=2, stride=2)
        self.out_channels = (embed_dims // 2, embed_dims)
        self.out_strides = OUT_STRIDES[:2]

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.up.reset_parameters()

    def forward(self, patches: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The two maps from the last patch map ``(B, h, w, D)``."""
        grid = self.norm(patches.permute(0, 3, 1, 2))  # (B, h, w, D) -> (B, D, h, w)
        return resample_to_strides((self.up(grid), grid), self.out_strides, image_size)
