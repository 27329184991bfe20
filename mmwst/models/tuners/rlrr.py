"""RLRR: residual low-rank rescaling (Dong et al., CVPR 2024)."""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import cast_groups_in_one_copy, cast_in_one_copy
from ..layers.scale_shift import SAFE_SCALE, ScaleShiftPairs, UnitMoments, param_dtype
from .base import BaseTuner, HostSpec, TokenContext

#: The Linear layers of every block that RLRR rescales.
LINEARS = ('qkv', 'proj', 'fc1', 'fc2')
#: RLRR's layouts on a Swin host: the authors' released code, and mmwst's own.
SWIN_VARIANTS = ('release', 'mmwst')


class _ResidualRescale(torch.autograd.Function):
    """``W' = W * (1 + s_out s_in)`` in two elementwise operators forward and two backward
    (three with q / k / v slices), none of them larger than the layer's weight.

    Forward: ``A = W * s_in`` (each q / k / v row slice by its own ``s_in``), then
    ``W' = W + s_out * A``. Backward, from ``G = dL/dW'`` (d_out x d_in)::

        dL/ds_out_i = sum_j G_ij A_ij
        dL/ds_in_j  = sum_i G_ij s_out_i W_ij      (over the rows of its slice)

    Each is a product summed over one dimension: the ``sum(grad * input)`` per channel
    that ``batch_norm``'s backward in evaluation mode computes, with mean 0 and variance
    1, in one operator together with ``grad * weight``. The first call reads ``G`` as
    ``(1, d_out, d_in)`` (channels: the rows) with ``A`` as the input and ``s_out`` as
    the weight, and returns ``dL/ds_out`` and ``K = G * s_out``; the second reads ``K``
    as ``(d_out, d_in)`` (channels: the columns) with ``W`` as the input and returns
    ``dL/ds_in``. With q / k / v slices a column is one channel per slice, which no
    single ``batch_norm`` layout gives: there ``dL/ds_in`` is a product and a sum.

    ``zeros`` and ``ones``: the means and variances (:class:`UnitMoments`), as long as
    the longer side of ``W`` and in :func:`param_dtype` of ``W``. ``low_out``,
    ``low_in``: optionally ``s_out``, ``s_in`` already in ``W``'s type (a frozen ``W``
    held in another precision than the scales, cast for all layers in one copy); the
    forward reads them instead of casting its own, the gradients are the scales' as
    without.
    """

    @staticmethod
    def forward(ctx, weight, scale_out, scale_in, zeros, ones, low_out=None, low_in=None):
        groups, d_in = scale_in.shape
        if low_out is None:
            low_out, low_in = scale_out, scale_in
        s_in = low_in.to(weight.dtype).unsqueeze(1)  # (groups, 1, d_in)
        # (d_out, d_in) -> (groups, d_out / groups, d_in): one s_in row per slice
        scaled = (weight.view(groups, -1, d_in) * s_in).view_as(weight)
        # (d_out,) -> (d_out, 1): s_out scales the rows
        rescaled = torch.addcmul(weight, scaled, low_out.to(weight.dtype).unsqueeze(1))
        ctx.save_for_backward(weight, scaled, scale_out, s_in, zeros, ones)
        ctx.scale_in_dtype = scale_in.dtype
        return rescaled

    @staticmethod
    def backward(ctx, grad):
        weight, scaled, scale_out, s_in, zeros, ones = ctx.saved_tensors
        need_weight, need_out, need_in = ctx.needs_input_grad[:3]
        d_out, d_in = weight.shape
        groups = s_in.shape[0]
        grad_weight = grad_scale_out = grad_scale_in = None
        # batch_norm's own statistics: empty in evaluation mode, as autograd passes them
        unsaved = zeros[:0]
        # channels: the rows, (d_out, d_in) -> (1, d_out, d_in)
        rows = (1, d_out, d_in)
        by_rows, grad_scale_out, _ = torch.ops.aten.native_batch_norm_backward(
            grad.reshape(rows),
            scaled.view(rows),
            scale_out.to(zeros.dtype),
            zeros[:d_out],
            ones[:d_out],
            unsaved,
            unsaved,
            False,
            0.0,
            [need_weight or need_in, need_out, False],
        )
        if need_in and groups == 1:  # channels: the columns, (d_out, d_in) is (N, C)
            # a weight of ones, which leaves the product as it is: without a weight the
            # CUDA kernel returns no weight gradient at all (an empty tensor)
            _, grad_scale_in, _ = torch.ops.aten.native_batch_norm_backward(
                by_rows.view(d_out, d_in),
                weight,
                ones[:d_in],
                zeros[:d_in],
                ones[:d_in],
                unsaved,
                unsaved,
                False,
                0.0,
                [False, True, False],
            )
            grad_scale_in = grad_scale_in.view(1, d_in)
        elif need_in:  # (d_out, d_in) -> (groups, d_out / groups, d_in): each slice's rows
            products = by_rows.view(groups, -1, d_in) * weight.view(groups, -1, d_in)
            grad_scale_in = products.sum(1, dtype=ctx.scale_in_dtype)  # summed in s_in's type
        if need_weight:  # a trained W (not RLRR's own): G * (1 + s_out s_in) = G + K * s_in
            # (d_out, d_in) -> (groups, d_out / groups, d_in)
            grad_weight = torch.addcmul(
                grad.view(groups, -1, d_in), by_rows.view(groups, -1, d_in), s_in
            )
            grad_weight = grad_weight.view_as(weight)
        return grad_weight, grad_scale_out, grad_scale_in, None, None, None, None


@MODELS.register_module()
class RLRR(BaseTuner):
    """Residual low-rank rescaling of every frozen Linear, plus SSF on the norms.

    Dong et al., "Low-Rank Rescaled Vision Transformer Fine-Tuning: A Residual Design
    Approach", CVPR 2024 (arXiv:2403.19067), the residual low-rank rescaling of its
    method section. For each frozen Linear (weight ``W``, d_out x d_in, bias ``b``) of
    every block (``qkv``, ``proj``, ``fc1``, ``fc2``) the layer computes::

        W' = W + W * (s_out s_in) = W * (1 + s_out s_in),    b' = b + f

    where ``*`` is elementwise, ``s_out`` is a d_out x 1 column, ``s_in`` a 1 x d_in row
    (their product is a rank-one rescaling matrix) and ``f`` a d_out-long shift. ``W'``
    is formed from ``W`` before one ``F.linear``, so training costs one matmul per
    layer. The fused ``qkv`` layer (rows ``[q; k; v]``) behaves exactly as three
    separate q / k / v layers: one 3D-long ``s_out`` and ``f``, and three separate
    D-long ``s_in`` rows, one per slice.

    SSF scale/shift pairs ``x * gamma + beta`` (SSF, Lian et al., NeurIPS 2022) sit
    after ``norm1`` and ``norm2`` of every block, on the patch tokens right after the
    patch embedding (before the class token and the position embedding) and after every
    final norm (``host.final_norms()``).

    Init (not identity at init, by design): ``s_in ~ U(-sqrt(6 / d_in), sqrt(6 / d_in))``
    and ``s_out ~ U(-sqrt 6, sqrt 6)`` (kaiming-uniform over their fan-in), ``f = 0``,
    ``gamma ~ N(1, std^2)``, ``beta ~ N(0, std^2)``.

    Mergeable: :meth:`merge` folds the rescaling into ``W`` and ``b``, and each SSF pair
    into the LayerNorm before it (the patch-embedding pair into the patch embedding's
    norm when it has one, else into its convolution), so the merged host runs with zero
    overhead. In the released Swin layout merging gives each patch-merging reduction a
    bias (its shift ``f``), which mmpretrain's bias-free reductions otherwise lack.
    :meth:`unmerge` restores the frozen weights (and removes those biases).

    Works on the ViT and the Swin host (on Swin every block of every stage). The
    paper's head is a zero-initialised linear layer on the class token (set in the
    configs, not here).

    On Swin, ``swin_variant`` chooses between two layouts:

    - ``'release'`` (default; the authors' released Swin code): the fused ``qkv`` layer
      is rescaled as one layer, ``W' = W * (1 + s_out s_in)`` with a single D-long
      ``s_in`` shared by q, k and v (and 3D-long ``s_out``, ``f``); every patch-merging
      reduction (``Linear(4C -> 2C)``, no bias) is rescaled too, ``W' = W * (1 + s_out
      s_in)`` with ``f`` as its bias; there is no SSF pair after the patch embedding.
    - ``'mmwst'`` (mmwst's own, the ViT layout carried over to Swin): three ``s_in`` in
      ``qkv`` (exactly three separate q / k / v layers), an SSF pair after the patch
      embedding, the patch-merging reductions left alone.

    Parameters per block of width D and MLP width H: qkv ``3D + 3D + g D`` (``g`` = 3
    slices of ``s_in`` on the ViT and in the ``'mmwst'`` Swin layout, 1 in the released
    Swin layout), proj 3D, fc1 D + 2H, fc2 H + 2D, SSF 4D; i.e. 23,808 for ViT-B/16
    (D = 768, H = 3072). Plus 2D after the patch embedding (not in the released Swin
    layout), 2D per final norm and, released Swin layout, ``4C + 2C + 2C`` per
    patch-merging reduction of input width C. ViT-B/16:
    12 x 23,808 + 2 x 768 + 2 x 768 = **288,768**. Swin-B (stage widths 128 / 256 /
    512 / 1024, depths 2 / 2 / 18 / 2, H = 4D): released layout 29 D per block, i.e.
    348,928 over the 24 blocks, + 8 x (128 + 256 + 512) = 7,168 for the reductions
    + 2 x 1024 after the final norm = **358,144**; ``'mmwst'`` layout 31 D per block
    (372,992) + 2 x 128 + 2 x 1024 = 375,296.

    Args:
        std (float): Standard deviation of the SSF initialisation. Defaults to 0.02.
        branch_drop_rate (float): The reference code's residual-branch "drop path":
            elementwise dropout on each block's attention and MLP branch outputs,
            rising linearly over the blocks from 0 (first block) to this value (last
            block). Use it with the host's ``drop_path_rate=0`` (otherwise both apply).
            Defaults to 0 (off).
        swin_variant (str): The layout on a Swin host, ``'release'`` or ``'mmwst'``
            (see above); Swin only. Defaults to ``'release'``.
        init_cfg (dict | list, optional): mmengine init config. Defaults to None.

    Examples:
        >>> import torch
        >>> import mmwst.models.tuners.rlrr  # noqa: F401  (registers mmwst.RLRR)
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.RLRR')])
        >>> model(torch.rand(2, 3, 32, 32))[0].shape
        torch.Size([2, 32])
        >>> model.merge_tuners()  # folded into the host weights: no extra cost
    """

    mergeable = True

    def __init__(
        self,
        std: float = 0.02,
        branch_drop_rate: float = 0.0,
        swin_variant: str = 'release',
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg)
        if swin_variant not in SWIN_VARIANTS:
            raise ValueError(
                f'RLRR swin_variant must be one of {", ".join(map(repr, SWIN_VARIANTS))}, '
                f'got {swin_variant!r}'
            )
        self.swin_variant = swin_variant
        if isinstance(std, bool) or not isinstance(std, (int, float)) or std < 0:
            raise ValueError(f'RLRR std must be a non-negative number, got {std!r}')
        if (
            isinstance(branch_drop_rate, bool)
            or not isinstance(branch_drop_rate, (int, float))
            or not 0.0 <= branch_drop_rate < 1.0
        ):
            raise ValueError(
                f'RLRR branch_drop_rate must be a number in [0, 1), got {branch_drop_rate!r}; '
                'it is the dropout probability of the last block (e.g. 0.1)'
            )
        self.std = float(std)
        self.branch_drop_rate = float(branch_drop_rate)
        # residual rescaling of the Linear layers, keyed '<block>_<layer>'
        self.scale_in = nn.ParameterDict()  # (groups, d_in); groups = 3 for qkv, else 1
        self.scale_out = nn.ParameterDict()  # (d_out, )
        self.shift = nn.ParameterDict()  # (d_out, )
        # SSF pairs, keyed '<block>_norm1', '<block>_norm2', 'patch_embed', 'final<i>'
        self.pairs = ScaleShiftPairs()
        self.moments = UnitMoments()  # for the backward of the rescaling
        # this forward pass's shifted biases b + f, made for all layers at once
        # (before_blocks) and taken by each layer's weight function; likewise the scales
        # (s_out, s_in) cast to a frozen host's lower precision in one copy
        self._shifted: dict[str, Tensor] = {}
        self._cast_scales: dict[str, list[Tensor]] = {}

    # ---- construction ------------------------------------------------------------------
    def _released_swin(self, host: HostSpec) -> bool:
        """Whether this host gets the released Swin layout (see the class docstring)."""
        if host.host_kind != 'swin':
            if self.swin_variant != 'release':
                raise ValueError(
                    f'RLRR swin_variant={self.swin_variant!r} chooses a layout on Swin hosts '
                    f'only; this host is a {host.host_kind!r}: remove swin_variant'
                )
            return False
        return self.swin_variant == 'release'

    def _layers(self, host: HostSpec) -> list[tuple[str, nn.Linear, int]]:
        """``(key, Linear, s_in slices)`` of every layer rescaled on this host."""
        released_swin = self._released_swin(host)
        layers = [
            (f'{spec.index}_{name}', getattr(spec, name), 3 if name == 'qkv' else 1)
            for spec in host.blocks
            for name in LINEARS
        ]
        if released_swin:
            layers = [(key, linear, 1) for key, linear, _ in layers]
            layers += [(f'merge{i}', linear, 1) for i, linear in enumerate(host.merging_layers())]
        return layers

    def param_count(self, host: HostSpec) -> int:
        """Per rescaled Linear: ``s_out`` and ``f`` (``d_out`` each) and ``s_in`` (``d_in``,
        once per q / k / v slice where they are separate); SSF pairs (``2 D``) after both
        norms of every block, after the patch embedding (not in the released Swin
        layout) and after the final norms."""
        total = sum(
            2 * linear.out_features + groups * linear.in_features
            for _, linear, groups in self._layers(host)
        )
        total += sum(2 * 2 * spec.dim for spec in host.blocks)
        if not self._released_swin(host):
            total += 2 * host.patch_embed.projection.out_channels
        return total + sum(2 * norm.normalized_shape[-1] for norm in host.final_norms())

    def build(self, host: HostSpec) -> None:
        self._linears: dict[str, nn.Linear] = {}
        self._saved: dict[str, Tensor] = {}
        self._created_bias: set[str] = set()
        if not self._released_swin(host):
            embed = host.patch_embed
            self._add_ssf('patch_embed', embed, embed.projection.out_channels)
        for key, linear, groups in self._layers(host):
            self._add_linear(key, linear, groups)
        num_blocks = len(host.blocks)
        for spec in host.blocks:
            for name in ('norm1', 'norm2'):
                self._add_ssf(f'{spec.index}_{name}', getattr(spec, name), spec.dim)
            rate = self.branch_drop_rate * spec.index / max(num_blocks - 1, 1)
            if rate > 0:
                self.hook_module(spec.attn_branch, partial(self._drop_branch, rate))
                self.hook_module(spec.mlp, partial(self._drop_branch, rate))
        for i, norm in enumerate(host.final_norms()):
            self._add_ssf(f'final{i}', norm, norm.normalized_shape[-1])
        self.reset_parameters()

    def _add_linear(self, key: str, linear: nn.Linear, groups: int) -> None:
        if linear.out_features % groups:
            raise ValueError(
                f'{key}: {linear.out_features} output features cannot be split into '
                f'{groups} equal q / k / v slices'
            )
        self.scale_in[key] = nn.Parameter(torch.empty(groups, linear.in_features))
        self.scale_out[key] = nn.Parameter(torch.empty(linear.out_features))
        self.shift[key] = nn.Parameter(torch.empty(linear.out_features))
        self._linears[key] = linear
        self.moments.reserve(max(linear.out_features, linear.in_features))
        self.hook_weight(linear, partial(self._rescale, key))

    def _add_ssf(self, key: str, module: nn.Module, dim: int) -> None:
        self.pairs.add(key, module, dim)
        self.hook_module(module, partial(self.pairs.output_hook, key))

    def reset_parameters(self) -> None:
        for key, scale_in in self.scale_in.items():
            bound_in = math.sqrt(6.0 / scale_in.shape[-1])  # kaiming-uniform, fan-in d_in
            nn.init.uniform_(scale_in, -bound_in, bound_in)
            nn.init.uniform_(self.scale_out[key], -math.sqrt(6.0), math.sqrt(6.0))  # fan-in 1
            nn.init.zeros_(self.shift[key])
        self.pairs.reset_parameters(self.std)

    # ---- the method's math -------------------------------------------------------------
    def rescale_factor(self, key: str) -> Tensor:
        """``s_out s_in`` of one layer as a ``(d_out, d_in)`` matrix.

        For the fused ``qkv`` layer each of the three row slices gets its own ``s_in``.
        """
        scale_in, scale_out = self.scale_in[key], self.scale_out[key]
        groups, d_in = scale_in.shape
        # an outer product per group, as one batched matrix product:
        # (groups, d_out / groups, 1) @ (groups, 1, d_in) -> (groups, d_out / groups, d_in)
        factor = torch.bmm(scale_out.view(groups, -1, 1), scale_in.unsqueeze(1))
        # (groups, d_out / groups, d_in) -> (d_out, d_in)
        return factor.reshape(-1, d_in)

    def effective_weight(
        self, key: str, weight: Tensor, bias: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``(W * (1 + s_out s_in), b + f)`` for the layer ``key`` with frozen ``W``, ``b``."""
        zeros, ones = self.moments.get(max(weight.shape), param_dtype(weight))
        cast = self._cast_scales.pop(key, None)
        if cast is None or cast[0].dtype != weight.dtype:
            cast = (None, None)
        rescaled = _ResidualRescale.apply(
            weight, self.scale_out[key], self.scale_in[key], zeros, ones, *cast
        )
        shifted = self._shifted.pop(key, None)
        if shifted is None:  # not made by before_blocks (e.g. a layer called on its own)
            shift = self.shift[key].to(weight.dtype)
            shifted = shift if bias is None else bias + shift
        return rescaled, shifted

    def _rescale(self, key: str, weight: Tensor, bias: Tensor | None):
        return self.effective_weight(key, weight, bias)

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        """Shift the biases of all rescaled layers, ``b + f``, in one multi-tensor
        addition (one kernel, like AdamW's fused step) rather than a small addition in
        each layer; each layer's weight function takes its own.

        Where the frozen weights are held in another precision than the scales
        (``frozen_dtype='bf16'``), the shifts and scales of all those layers are first
        cast to it in one copy each (:func:`cast_in_one_copy`; the shifts' gradients come
        back through one cast), where each layer would cast its own three, forward and
        backward: the same values and gradients."""
        self._shifted.clear()
        self._cast_scales.clear()
        if self.merged:
            return x
        by_dtype: dict[torch.dtype, list[str]] = {}
        for key, linear in self._linears.items():
            if linear.weight.dtype != self.shift[key].dtype:
                by_dtype.setdefault(linear.weight.dtype, []).append(key)
        for dtype, low in by_dtype.items():
            with torch.no_grad():  # read forward only: the gradients are the scales' own
                scales = {key: (self.scale_out[key], self.scale_in[key]) for key in low}
                self._cast_scales.update(cast_groups_in_one_copy(scales, dtype))
            # b + f in the frozen type where b is in it (or absent)
            own = [key for key in low if self._bias_dtype(key) in (None, dtype)]
            if own:
                shifts = cast_in_one_copy([self.shift[key] for key in own], dtype)
                self._shifted.update(zip(own, shifts))
                biased = [key for key in own if self._bias_dtype(key) is not None]
                if biased:
                    biases = [self._linears[key].bias for key in biased]
                    added = torch._foreach_add(biases, [self._shifted[key] for key in biased])
                    self._shifted.update(zip(biased, added))
        keys = [
            key
            for key in self._linears
            if key not in self._shifted and self._bias_dtype(key) == self.shift[key].dtype
        ]
        if keys:
            biases = [self._linears[key].bias for key in keys]
            shifted = torch._foreach_add(biases, [self.shift[key] for key in keys])
            self._shifted.update(zip(keys, shifted))
        return x

    def _bias_dtype(self, key: str) -> torch.dtype | None:
        """The type of layer ``key``'s frozen bias (None: it has none)."""
        bias = self._linears[key].bias
        return None if bias is None else bias.dtype

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._shifted.clear()  # all taken, unless a layer did not run
        self._cast_scales.clear()
        return x

    def _drop_branch(self, rate: float, module: nn.Module, inputs, output: Tensor) -> Tensor:
        return F.dropout(output, p=rate, training=self.training)

    # ---- merging -------------------------------------------------------------------------
    def _linear_bias(self, key: str) -> nn.Parameter:
        """The bias that absorbs the shift ``f`` when merging. A patch-merging reduction
        (released Swin layout) has none: merging gives it one, unmerging removes it."""
        linear = self._linears[key]
        if linear.bias is None:
            if not key.startswith('merge'):
                raise ValueError(
                    f'cannot merge RLRR into {key}: the Linear has no bias to absorb the shift '
                    'f (e.g. qkv_bias=False); keep the model unmerged'
                )
            weight = linear.weight
            linear.bias = nn.Parameter(
                torch.zeros(linear.out_features, dtype=weight.dtype, device=weight.device),
                requires_grad=False,
            )
            self._created_bias.add(key)
        return linear.bias

    def merge(self, host: HostSpec) -> None:
        for key, linear in self._linears.items():
            bias = self._linear_bias(key)
            scale = 1 + self.rescale_factor(key).to(linear.weight.dtype)
            if (scale.abs() < SAFE_SCALE).any():  # unmerge would divide by ~0: keep it
                self._saved[key] = linear.weight.detach().clone()
            linear.weight.mul_(scale)
            bias.add_(self.shift[key].to(bias.dtype))
        self.pairs.merge()

    def unmerge(self, host: HostSpec) -> None:
        self.pairs.unmerge()
        for key, linear in self._linears.items():
            if key in self._created_bias:
                linear.bias = None
                self._created_bias.discard(key)
            else:
                bias = self._linear_bias(key)
                bias.sub_(self.shift[key].to(bias.dtype))
            saved = self._saved.pop(key, None)
            if saved is not None:
                linear.weight.copy_(saved)
            else:
                linear.weight.div_(1 + self.rescale_factor(key).to(linear.weight.dtype))

    def extra_repr(self) -> str:
        return (
            f'std={self.std}, branch_drop_rate={self.branch_drop_rate}, '
            f'swin_variant={self.swin_variant!r}'
        )
