"""FreqFit: frequency fine-tuning between ViT blocks (Ly and Nguyen, arXiv:2411.19297)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.spectral import SpectralFilter1d, SpectralFilter2d
from .base import BaseTuner, HostSpec, TokenContext

FILTER_TYPES = ('complex', 'real')
#: Where FreqFit filters: the 2-D patch grid, or the 1-D token sequence after the class
#: token (the released code's form for MoCo v3, MAE and CLIP hosts and with prompts).
MODES = ('2d', '1d')


class _AddAfter(torch.autograd.Function):
    """``x + [0; update]``: ``update`` added to the tokens of ``x`` after the first
    ``start``, in ``x``'s dtype. ``x``'s gradient is the output's, whole; ``update``'s
    is a view of its last tokens (autograd's route - a concatenation of the untouched
    and the updated tokens, or a padded update - copies it into a zero-filled or a
    narrowed tensor first)."""

    @staticmethod
    def forward(ctx, x: Tensor, update: Tensor, start: int) -> Tensor:
        ctx.start, ctx.dtype = start, update.dtype
        out = x + (F.pad(update, (0, 0, start, 0)) if start else update)
        # no `.to` that changes nothing: torch.compile (torch 2.11) passes no gradient
        # into a function whose output is such a cast of another tensor
        return out if out.dtype == x.dtype else out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, grad[:, ctx.start :].to(ctx.dtype), None


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

    The 1-D form (``mode='1d'``; the released code's for MoCo v3, MAE and CLIP hosts
    and with VPT prompts): at the same L + 1 positions every token after the host's
    class token - prompts and patches, in sequence order - goes through a
    :class:`~mmwst.models.layers.SpectralFilter1d`::

        X'  = X + irfft(rfft(X, dim=tokens, norm='ortho') * K_i, n=N, norm='ortho')

    with ``K_i`` over the ``N0 // 2 + 1`` bins of the default sequence (``N0 = h0 w0 +
    extra_tokens``; e.g. 196 // 2 + 1 = 99 for ViT-B/16, (196 + 10) // 2 + 1 = 104
    with 10 prompts) and no scale or shift. The last position filters right after the
    last block, before any tuner removes its tokens (VPT's prompts are filtered with the
    patches, as released; list FreqFit after VPT). At the default image size a sequence
    of any other length is refused (it means ``extra_tokens`` does not match the
    inserted tokens); at other sizes the filter is resized over its bins.

    Parameters: 2-D (L + 1) x (h0 x (w0 // 2 + 1) x D x c + 2D), c = 2 (complex) or 1
    (real). ViT-B/16 (L = 12, 14 x 14 grid, D = 768): complex
    13 x (14 x 8 x 768 x 2 + 2 x 768) = **2,256,384**; real **1,138,176**. 1-D:
    (L + 1) x (N0 // 2 + 1) x D x c; ViT-B/16 complex 13 x 99 x 768 x 2 =
    **1,976,832**, with 10 prompts 13 x 104 x 768 x 2 = 2,076,672. On top of the host
    method's own parameters.

    Args:
        filter_type (str): ``'complex'`` (the paper's default) or ``'real'``.
            Defaults to ``'complex'``.
        mode (str): ``'2d'`` (the patch grid) or ``'1d'`` (the token sequence after the
            class token). Defaults to ``'2d'``.
        extra_tokens (int): ``'1d'`` only: tokens other tuners insert after the class
            token (e.g. VPT's ``num_prompts``), part of the filtered sequence; the host's
            own register tokens are counted without it. Defaults to 0.
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

    supported_hosts = ('vit', 'sam')  # one patch grid throughout
    host_reason = (
        "It filters the ViT's single patch grid between blocks, which a hierarchical "
        'backbone such as Swin does not have (its grid and width change at every stage); '
        'use FreqFit with mmwst.TunedVisionTransformer.'
    )

    def __init__(
        self, filter_type: str = 'complex', mode: str = '2d', extra_tokens: int = 0, init_cfg=None
    ) -> None:
        super().__init__(init_cfg)
        if filter_type not in FILTER_TYPES:
            raise ValueError(
                f'FreqFit filter_type must be one of {FILTER_TYPES}, got {filter_type!r}'
            )
        if mode not in MODES:
            raise ValueError(f'FreqFit mode must be one of {MODES}, got {mode!r}')
        if isinstance(extra_tokens, bool) or not isinstance(extra_tokens, int) or extra_tokens < 0:
            raise ValueError(
                f'FreqFit extra_tokens must be a non-negative integer, got {extra_tokens!r}'
            )
        if extra_tokens and mode != '1d':
            raise ValueError(
                "FreqFit extra_tokens sizes the 1-D filter (mode='1d'); the 2-D filter reads "
                'the patch grid only: remove extra_tokens or set mode="1d"'
            )
        self.filter_type = filter_type
        self.mode = mode
        self.extra_tokens = extra_tokens
        self.filters = nn.ModuleList()

    def _length(self, host: HostSpec) -> int:
        """The 1-D filter's default sequence: the host's register tokens (if any), the
        patches and the tokens other tuners insert."""
        h, w = host.patch_resolution
        registers = int(getattr(host, 'num_register_tokens', 0))
        return registers + int(h) * int(w) + self.extra_tokens

    def build(self, host: HostSpec) -> None:
        grid = tuple(int(s) for s in host.patch_resolution)  # the default (h0, w0)
        self._grid = grid
        self._class_tokens = int(host.num_extra_tokens)
        self._sequence = self._length(host)  # 1-D: the tokens after the class token
        # one filter before each block and one after the last
        for spec in (*host.blocks, host.blocks[-1]):
            if self.mode == '1d':
                layer = SpectralFilter1d(spec.dim, self._sequence, self.filter_type)
            else:
                layer = SpectralFilter2d(spec.dim, grid, self.filter_type)
            self.filters.append(layer)

    def param_count(self, host: HostSpec) -> int:
        """At each of the ``L + 1`` positions a filter over the default grid's rfft,
        ``h (w // 2 + 1) D`` (times 2 when complex), and ``gamma``, ``beta`` (``2 D``);
        1-D: ``(N0 // 2 + 1) D`` (times 2 when complex), no scale or shift."""
        h, w = host.patch_resolution
        parts = 2 if self.filter_type == 'complex' else 1
        dims = [spec.dim for spec in (*host.blocks, host.blocks[-1])]
        if self.mode == '1d':
            return sum((self._length(host) // 2 + 1) * d * parts for d in dims)
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
        # (B, h*w, D) -> (B, h, w, D) -> the filter's update -> (B, h*w, D)
        update = self.filters[position].update(x[:, start:].reshape(B, h, w, D))
        return _AddAfter.apply(x, update.reshape(B, h * w, D), start)

    def _filter_sequence(self, position: int, x: Tensor, ctx: TokenContext) -> Tensor:
        """1-D: every token after the class token (prompts and patches) as one sequence."""
        start = self._class_tokens
        length = x.shape[1] - start
        expected = self._sequence
        if tuple(ctx.patch_resolution) == self._grid and length != expected:
            count = expected - self._grid[0] * self._grid[1] - self.extra_tokens
            registers = f'{count} registers + ' if count else ''
            raise ValueError(
                f'FreqFit (mode="1d") was built for {expected} tokens after the class token '
                f'({registers}{self._grid[0]}x{self._grid[1]} patches + '
                f'extra_tokens={self.extra_tokens}) '
                f'but gets {length}; set extra_tokens={length - expected + self.extra_tokens} '
                '(the tokens other tuners insert, e.g. VPT num_prompts) and list FreqFit after '
                'the tuner that inserts them'
            )
        return _AddAfter.apply(x, self.filters[position].update(x[:, start:]), start)

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.mode == '1d':
            return self._filter_sequence(index, x, ctx)
        return self._filter(index, x, ctx)

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.mode == '1d' and index == len(self.filters) - 2:  # right after the last block
            return self._filter_sequence(len(self.filters) - 1, x, ctx)
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.mode == '1d':
            return x
        return self._filter(len(self.filters) - 1, x, ctx)

    def extra_repr(self) -> str:
        return (
            f'filter_type={self.filter_type!r}, mode={self.mode!r}, '
            f'extra_tokens={self.extra_tokens}, positions={len(self.filters)}'
        )
