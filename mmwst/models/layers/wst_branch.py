"""WST's trainable branch as stateless steps (Zeng, Huang and Wang, AAAI 2025).

:class:`WSTBranch` owns WST's parameters and math and keeps no state between calls:
the caller passes the branch state in and gets the next one back. Its one driver is
the tuner (:class:`~mmwst.models.tuners.WST`), from the host's token hooks, in
classification and as a part of the dense backbone
(:class:`~mmwst.models.backbones.DenseTunedViT`).

Patch maps are channels-last, ``(B, h, w, D)``: a ViT's patch tokens ``(B, h * w, D)``
reshaped, which costs no copy, and the layout in which WST's bottlenecks (Linears over
the channels) run directly.

**The state is kept in the wavelet domain.** The paper replaces the branch state by
``S_{l+1} = IDWT(W_l)`` and transforms it again at the next layer, ``DWT(S_{l+1})``.
For an orthogonal wavelet with periodic borders the transform is an orthonormal change
of basis, so ``DWT(IDWT(W_l)) = W_l`` exactly: the next layer's sub-bands are the
bottleneck's output itself. The branch therefore carries ``T_l = DWT(S_l)``, with
``T_0 = DWT(S_0)`` from the fine patch embedding and ``T_{l+1} = W_l``; no transform runs
between layers (the values equal the paper's to floating-point rounding), and the
spatial state ``S_l = IDWT(T_l)`` (:meth:`WSTBranch.spatial`) is computed only where a
consumer reads it (the dense pyramid, the side network's bridges).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .casting import cast_in_one_copy
from .wavelet import DWT2d, IDWT2d


def wst_branch_count(
    in_channels: int, embed_dims: int, patch_size: tuple[int, int], num_layers: int, rank: int
) -> int:
    """Trainable parameters of :class:`WSTBranch`, from the widths alone:
    ``C_in (D/4) (p/2)^2 + D/4`` for the fine patch embedding and ``2 r D + r + D`` per
    layer for its bottleneck (ViT-B/16, r = 2: 83,160)."""
    (ph, pw), quarter = patch_size, embed_dims // 4
    embed = in_channels * quarter * (ph // 2) * (pw // 2) + quarter
    return embed + num_layers * (2 * rank * embed_dims + rank + embed_dims)


class WSTBranch(nn.Module):
    """The fine patch embedding and the per-layer wavelet bottlenecks of WST.

    For a ViT of width ``D``, patch size ``p`` and ``L`` layers, on an image whose patch
    grid is ``h x w``:

    - :meth:`embed`: ``S_0 = Conv2d(C_in -> D/4, kernel p/2, stride p/2)(image)``,
      ``(B, D/4, 2h, 2w)``, returned as its sub-bands ``T_0 = DWT(S_0)``: the one-level
      DWT brings the branch to the patch grid and width ``D``, ``(B, h, w, D)``;
    - :meth:`step` ``l``: ``Z_l = T_l + X_l`` (``X_l`` is the patch map entering block
      ``l``) and ``W_l = U_l(D_l(Z_l))`` (``Linear(D -> r)`` then ``Linear(r -> D)``,
      both with bias, no activation). ``W_l`` is both WST's feedback (the caller adds
      ``scale * W_l`` to the block's output patch tokens where its mode allows it) and
      the next state ``T_{l+1} = DWT(IDWT(W_l)) = W_l``;
    - :meth:`spatial`: the branch state ``S_l = IDWT(T_l)``, ``(B, D/4, 2h, 2w)``.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): ViT width ``D`` (a multiple of 4).
        patch_size (tuple[int, int]): ViT patch size (both even).
        num_layers (int): ViT layers ``L`` (one bottleneck each).
        rank (int): Bottleneck width ``r``. Defaults to 2.
        wavelet (str): Orthogonal PyWavelets wavelet name. Defaults to 'haar'.

    Parameters: ``C_in (D/4) (p/2)^2 + D/4 + L (2 r D + r + D)``; ViT-B/16, r = 2: 83,160.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dims: int,
        patch_size: tuple[int, int],
        num_layers: int,
        rank: int = 2,
        wavelet: str = 'haar',
    ) -> None:
        super().__init__()
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
            raise ValueError(f'WST rank must be a positive integer, got {rank!r}; e.g. rank=2')
        patch_h, patch_w = patch_size
        if patch_h % 2 or patch_w % 2:
            raise ValueError(
                f'WST embeds the image at half the backbone patch size, so the patch size '
                f'must be even; the host has patch size {(patch_h, patch_w)}. Use a host '
                'with an even patch size (e.g. 16).'
            )
        if embed_dims % 4:
            raise ValueError(
                f'WST gives its branch a quarter of the backbone width (one DWT level maps '
                f'D / 4 channels to D), so the width must be divisible by 4; the host has '
                f'embed_dims={embed_dims}. Use a host whose width is a multiple of 4.'
            )
        self.rank = int(rank)
        self.wavelet = wavelet
        self.embed_dims = embed_dims
        self.branch_dims = embed_dims // 4
        half = (patch_h // 2, patch_w // 2)
        self.dwt = DWT2d(wavelet)  # validates the wavelet name
        self.idwt = IDWT2d(wavelet)
        self.patch_embed = nn.Conv2d(
            in_channels, self.branch_dims, kernel_size=half, stride=half, bias=True
        )
        self.down = nn.ModuleList(nn.Linear(embed_dims, self.rank) for _ in range(num_layers))
        self.up = nn.ModuleList(nn.Linear(self.rank, embed_dims) for _ in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Conv: PyTorch's default; bottlenecks: trunc_normal(0.02), biases 0."""
        self.patch_embed.reset_parameters()
        for linear in (*self.down, *self.up):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def embed(self, image: Tensor) -> Tensor:
        """``T_0 = DWT(S_0)``: ``(B, C_in, H, W)`` -> ``S_0`` ``(B, D/4, 2h, 2w)`` ->
        ``(B, h, w, D)``."""
        return self.dwt(self.patch_embed(image), channels_last=True)

    def cast_bottlenecks(self, dtype: torch.dtype) -> tuple[tuple[Tensor, ...], ...]:
        """Every layer's bottleneck ``(D_l weight, D_l bias, U_l weight, U_l bias)`` in
        ``dtype`` (autocast's, under autocast), cast in one copy for all layers instead of
        four casts per layer at its products and four back (:func:`cast_in_one_copy`):
        for :meth:`step`'s ``weights``."""
        params = [
            t for d, u in zip(self.down, self.up) for t in (d.weight, d.bias, u.weight, u.bias)
        ]
        cast = cast_in_one_copy(params, dtype)
        return tuple(cast[i : i + 4] for i in range(0, len(cast), 4))

    def step(
        self, index: int, bands: Tensor, patches: Tensor, weights: Sequence[Tensor] | None = None
    ) -> Tensor:
        """One wavelet block: ``W_l = U_l(D_l(T_l + X_l))``, also the next state.

        Args:
            index (int): The layer ``l``.
            bands (Tensor): ``T_l = DWT(S_l)`` channels-last, ``(B, h, w, D)``.
            patches (Tensor): ``X_l`` channels-last, ``(B, h, w, D)``.
            weights (Sequence[Tensor], optional): This layer's entry of
                :meth:`cast_bottlenecks`; None reads the parameters themselves.

        Returns:
            Tensor: ``W_l`` channels-last ``(B, h, w, D)`` (reshape to ``(B, h * w, D)``
            for tokens), which is ``T_{l+1}``.
        """
        if bands.shape != patches.shape:
            raise ValueError(
                f"WST's branch state {tuple(bands.shape)} and the patch map "
                f'{tuple(patches.shape)} differ: the tokens entering a block must be the '
                'patch grid the branch was embedded on (a tuner that adds or removes tokens '
                'must leave them as it found them)'
            )
        if weights is None:
            return self.up[index](self.down[index](bands + patches))  # Z_l -> W_l
        down_weight, down_bias, up_weight, up_bias = weights
        return F.linear(F.linear(bands + patches, down_weight, down_bias), up_weight, up_bias)

    def spatial(self, bands: Tensor) -> Tensor:
        """The branch state ``S = IDWT(T)``: ``(B, h, w, D)`` -> ``(B, D/4, 2h, 2w)``."""
        return self.idwt(bands, channels_last=True)

    def extra_repr(self) -> str:
        return f'rank={self.rank}, wavelet={self.wavelet!r}'


def patch_map(tokens: Tensor, num_prefix: int, grid: tuple[int, int]) -> Tensor:
    """A ViT's patch tokens as a channels-last map: ``(B, prefix + h*w, D)`` ->
    ``(B, h, w, D)`` (a view when the tokens are contiguous)."""
    patches = tokens[:, num_prefix:]
    assert patches.shape[1] == grid[0] * grid[1], (tuple(patches.shape), grid)
    return patches.reshape(patches.shape[0], grid[0], grid[1], patches.shape[2])


def add_to_patches(tokens: Tensor, num_prefix: int, delta: Tensor, scale: float) -> Tensor:
    """``tokens`` with ``scale * delta`` (channels-last ``(B, h, w, D)``) added to the
    patch tokens; the prefix tokens (class token...) untouched."""
    # one split, not two slices: in backward its pieces' gradients join in one kernel
    front, patches = tokens.split([num_prefix, tokens.shape[1] - num_prefix], dim=1)
    # (B, h, w, D) -> (B, h * w, D); one kernel for the scaled sum
    patches = torch.add(patches, delta.reshape(patches.shape).to(tokens.dtype), alpha=scale)
    return torch.cat([front, patches], dim=1)
