"""FreqFit: frequency fine-tuning between ViT blocks (Ly and Nguyen, arXiv:2411.19297)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.spectral import SpectralFilter2d
from .base import BaseTuner, HostSpec, TokenContext

FILTER_TYPES = ('complex', 'real')


@MODELS.register_module()
class FreqFit(BaseTuner):
    """Learned spectral filters on the patch tokens between the blocks of a ViT.

    Ly and Nguyen, "Enhancing Parameter-Efficient Fine-Tuning of Vision Transformers
    through Frequency-Based Adaptation" (arXiv:2411.19297), the FreqFit layer of its
    method section. A plug-in: it is
    combined with any other tuner in the same ``tuners`` list (LoRA, Adapter, VPT,
    BitFit, RLRR...). At each of L + 1 positions (before each of the L blocks and after
    the last block, before the final norm) the patch tokens ``P`` of shape
    ``(B, h, w, D)`` go through a :class:`~mmwst.models.layers.SpectralFilter2d`::

        F   = rfft2(P, dims (h, w), norm='ortho')          # in float32
        P'  = irfft2(F * K_i, s=(h, w), norm='ortho')
        out = P + gamma_i * P' + beta_i                      # back to the input dtype

    ``K_i`` is complex (``filter_type='complex'``, stored as real and imaginary parts)
    or real (``'real'``, half the parameters) over the ``(h, w // 2 + 1)`` rfft grid.
    The class token and every other token in front of the patch tokens
    (``ctx.num_prefix``: prompts, meta tokens) pass through untouched. Init:
    ``K_i ~ N(0, 0.02^2)`` (both parts), ``gamma_i ~ N(1, 0.02^2)``,
    ``beta_i ~ N(0, 0.02^2)``, so the model is not the frozen model at init.
    Not mergeable (the filter mixes tokens). As in the reference code, the position
    after the last block changes the patch tokens only, so with ``out_type='cls_token'``
    it leaves the output unchanged (its parameters get zero gradients); it matters for
    the ``'avg_patch'``, ``'featmap'`` and dense outputs.

    Input sizes: each filter is built for the host's default patch grid
    (``host.patch_resolution``, 14 x 14 for ViT-B/16 at 224). At any other grid the
    filter is resized over the frequency grid by bilinear interpolation with aligned
    corners, real and imaginary parts separately (see
    :class:`~mmwst.models.layers.SpectralFilter2d`): DC and Nyquist bins map onto each
    other, non-square grids work, and the stored filter is trained through the resize.

    Hosts: the plain ViT (``TunedVisionTransformer``) only - the method is defined on
    the ViT's single, fixed token grid; a Swin host (its grid and width change at every
    stage) raises ``TypeError``.

    Parameters: (L + 1) x (h0 x (w0 // 2 + 1) x D x c + 2D), c = 2 (complex) or 1
    (real). ViT-B/16 (L = 12, 14 x 14 grid, D = 768): complex
    13 x (14 x 8 x 768 x 2 + 2 x 768) = **2,256,384**; real **1,138,176**; on top of
    the host method's own parameters.

    Args:
        filter_type (str): ``'complex'`` (the paper's default) or ``'real'``.
            Defaults to ``'complex'``.
        init_cfg (dict | list, optional): mmengine init config. Defaults to None.

    Examples:
        >>> import torch
        >>> import mmwst.models.tuners.freqfit  # noqa: F401  (registers mmwst.FreqFit)
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(
        ...     arch=arch, img_size=32, patch_size=8,
        ...     tuners=[dict(type='mmwst.LoRA', rank=4), dict(type='mmwst.FreqFit')])
        >>> len(model.tuners[1].filters)  # L + 1 positions
        3
        >>> model(torch.rand(2, 3, 32, 48))[0].shape  # filters resized to the 4 x 6 grid
        torch.Size([2, 32])
    """

    supported_hosts = ('vit',)
    host_reason = (
        "It filters the ViT's single patch grid between blocks, which a hierarchical "
        'backbone such as Swin does not have (its grid and width change at every stage); '
        'use FreqFit with mmwst.TunedVisionTransformer.'
    )

    def __init__(self, filter_type: str = 'complex', init_cfg=None) -> None:
        super().__init__(init_cfg)
        if filter_type not in FILTER_TYPES:
            raise ValueError(
                f'FreqFit filter_type must be one of {FILTER_TYPES}, got {filter_type!r}'
            )
        self.filter_type = filter_type
        self.filters = nn.ModuleList()

    def build(self, host: HostSpec) -> None:
        grid = tuple(int(s) for s in host.patch_resolution)  # the default (h0, w0)
        # one filter before each block and one after the last
        for spec in (*host.blocks, host.blocks[-1]):
            self.filters.append(SpectralFilter2d(spec.dim, grid, self.filter_type))

    def param_count(self, host: HostSpec) -> int:
        """At each of the ``L + 1`` positions a filter over the default grid's rfft,
        ``h (w // 2 + 1) D`` (times 2 when complex), and ``gamma``, ``beta`` (``2 D``)."""
        h, w = host.patch_resolution
        parts = 2 if self.filter_type == 'complex' else 1
        dims = [spec.dim for spec in (*host.blocks, host.blocks[-1])]
        return sum(h * (w // 2 + 1) * d * parts + 2 * d for d in dims)

    def reset_parameters(self) -> None:
        for layer in self.filters:
            layer.init_weights()

    def _filter(self, position: int, x: Tensor, ctx: TokenContext) -> Tensor:
        start = ctx.num_prefix
        B, N, D = x.shape
        h, w = ctx.patch_resolution
        assert N - start == h * w, (
            f'{N - start} tokens after the {start} prefix tokens, expected the {h}x{w} patch grid'
        )
        # (B, h*w, D) -> (B, h, w, D)
        patches = x[:, start:].reshape(B, h, w, D)
        patches = self.filters[position](patches)
        # (B, h, w, D) -> (B, h*w, D)
        patches = patches.reshape(B, h * w, D)
        return torch.cat([x[:, :start], patches], dim=1)

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        return self._filter(index, x, ctx)

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        return self._filter(len(self.filters) - 1, x, ctx)

    def extra_repr(self) -> str:
        return f'filter_type={self.filter_type!r}, positions={len(self.filters)}'
