"""A hierarchical side network: the trainable pyramid of HST (Lin et al., arXiv 2310.05393).

The side network runs beside a frozen ViT. It has four stages at strides 4, 8, 16 and
32 of the input image; each stage embeds its input (the image, or the previous stage's
map) and runs a few :class:`SideBlock` s, each of which reads one ViT layer through a
cross-attention over two key tokens and adds that layer's fine-grained map.

The pieces are small and stand alone, so the classification tuner
(:class:`~mmwst.models.tuners.hst.HST`, widths ``[32, 48, 64, 72]``) and a dense
backbone (widths ``[64, 128, 256, 384]``) build the same network:

- :class:`ConvStem`: Conv3x3/s2 -> BatchNorm -> ReLU -> Conv2x2/s2 -> LayerNorm (stride 4);
- :class:`OverlapPatchEmbed`: Conv3x3/s2/p1 -> LayerNorm (stride 2);
- :class:`MetaCrossAttention`: side tokens attend to a few key tokens, the key side
  of several blocks computed at once (:func:`~.side_keys.key_terms`);
- :class:`SideBlock`: ``x + DropPath(CrossAttn(LN(x), kv))``, ``+ fine``,
  ``+ DropPath(MLP(LN(x)))``;
- :class:`HierarchicalSideNetwork`: the four stages, driven one block at a time (by
  :class:`~.hst_side.HSTSide`, a stage once the ViT has run its layers).

Every spatial size comes from the feature maps themselves: any input of at least
4 x 4 pixels works, square or not (the 3x3 convolutions give ``ceil(H / 2)``, the 2x2
convolution of the stem ``floor(H / 2)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from .casting import conv2d_with
from .side_keys import key_terms, paired_keys

#: LayerNorm epsilon inside side blocks and at the end of each stage; the stem, the
#: patch embeddings and the bridge norms keep PyTorch's 1e-5 (as the reference code).
SIDE_NORM_EPS = 1e-6


def init_side_weights(module: nn.Module) -> None:
    """HST's initialisation, applied to every sub-module of ``module``.

    Conv: normal(0, sqrt(2 / fan_out)) with ``fan_out = k_h * k_w * C_out / groups``,
    bias 0; Linear: trunc_normal(std 0.02), bias 0; LayerNorm / BatchNorm: weight 1,
    bias 0 (BatchNorm running statistics reset).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _to_tokens(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``(B, C, H, W)`` -> tokens ``(B, H*W, C)`` and the grid ``(H, W)``."""
    height, width = x.shape[-2:]
    # (B, C, H, W) -> (B, C, H*W) -> (B, H*W, C)
    return x.flatten(2).transpose(1, 2), (height, width)


def tokens_to_map(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """Tokens ``(B, H*W, C)`` -> map ``(B, C, H, W)``."""
    # (B, H*W, C) -> (B, C, H*W) -> (B, C, H, W)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


class ConvStem(nn.Module):
    """Stride-4 stem on the image: Conv3x3/s2 -> BN -> ReLU -> Conv2x2/s2 -> LN.

    Args:
        out_channels (int): Output width C.
        in_channels (int): Image channels. Defaults to 3.

    Parameters: ``9 * in * C`` (no bias) + ``2 * C`` (BN) + ``4 * C * C + C`` +
    ``2 * C`` (LN); C = 32: 5,120.
    """

    stride = 4

    def __init__(self, out_channels: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 2, stride=2)
        self.norm = nn.LayerNorm(out_channels)

    def product_weights(self) -> list[Tensor]:
        """The convolutions' weights, in the order :meth:`forward` takes them (their
        biases stay their own: inductor's convolution takes no bias that is a view)."""
        return [self.conv1.weight, self.conv2.weight]

    def forward(
        self, image: Tensor, weights: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, tuple[int, int]]:
        """``(B, in, H, W)`` -> tokens ``(B, H/4 * W/4, C)`` and their grid.
        ``weights``: :meth:`product_weights` as the caller cast them (None: its own)."""
        if image.shape[-2] < self.stride or image.shape[-1] < self.stride:
            raise ValueError(
                f'the side network needs images of at least {self.stride} x {self.stride} '
                f'pixels, got {tuple(image.shape[-2:])}'
            )
        w1, w2 = self.product_weights() if weights is None else weights
        x = conv2d_with(self.conv1, image, w1, None)
        x = conv2d_with(self.conv2, self.act(self.bn(x)), w2, self.conv2.bias)
        tokens, hw = _to_tokens(x)
        return self.norm(tokens), hw


class OverlapPatchEmbed(nn.Module):
    """Stride-2 overlapping patch embedding: Conv3x3/s2/p1 (bias) -> tokens -> LN.

    Args:
        in_channels (int): Width of the input map.
        out_channels (int): Output width.

    Parameters: ``9 * in * out + out + 2 * out``.
    """

    stride = 2

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(out_channels)

    def product_weights(self) -> list[Tensor]:
        """The convolution's weight, as :meth:`forward` takes it (its bias stays its
        own: inductor's convolution takes no bias that is a view)."""
        return [self.proj.weight]

    def forward(
        self, x: Tensor, weights: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, tuple[int, int]]:
        """``(B, in, H, W)`` -> tokens ``(B, ceil(H/2) * ceil(W/2), out)`` and their grid.
        ``weights``: :meth:`product_weights` as the caller cast them (None: its own)."""
        (weight,) = self.product_weights() if weights is None else weights
        tokens, hw = _to_tokens(conv2d_with(self.proj, x, weight, self.proj.bias))
        return self.norm(tokens), hw


class MetaCrossAttention(nn.Module):
    """Multi-head cross-attention of side tokens over a few key tokens.

    ``proj(softmax(q k^T / sqrt(d_head)) v)`` with ``q = W_q x + b_q``,
    ``k = W_k kv``, ``v = W_v kv``: separate Linears (all with bias when ``qkv_bias``).

    With only ``M`` keys (HST: the meta token and the mean fine token, ``M = 2``) the
    same function is computed without the ``N x C`` queries and attention output: for
    head ``h`` and key ``j``, ``q_h . k_{j,h} = x . (W_{q,h}^T k_{j,h}) + b_{q,h} .
    k_{j,h}``, so the scores are one ``(N, C) x (C, H M)`` product, and
    ``proj(out) = sum_{h,j} a_{h,j} W_{p,h} v_{j,h} + b_p`` is one ``(N, H M) x
    (H M, C)`` product (the key side: :func:`~.side_keys.key_terms`). Per token that is
    ``4 C H M`` multiply-adds instead of ``2 C^2 + 2 C M``, and autograd keeps the
    ``N x H M`` attention weights instead of the ``N x C`` queries and outputs - the
    cost of the side network's stride-4 stage.

    Args:
        dim (int): Token width C (queries and keys alike).
        num_heads (int): Heads; must divide ``dim``.
        qkv_bias (bool): Bias on q, k and v. Defaults to True.
        attn_drop (float): Dropout on the attention weights (training only).
            Defaults to 0.

    Parameters: ``4 * (C * C + C)`` with bias.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(
                f'num_heads must be a positive divisor of the width {dim}, got {num_heads}'
            )
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # head h's channels of the keys (scaled by 1 / sqrt(C / heads)) and of the values;
        # a constant, not saved with the weights
        self.register_buffer('head_mask', self._head_mask(torch.float32), persistent=False)

    def _head_mask(self, dtype: torch.dtype, device=None) -> Tensor:
        """``(2, 1, heads, 1, C)``: ``[scale * own, own]`` with ``own[h, c]`` 1 where
        channel ``c`` belongs to head ``h``; made in float64 and rounded once."""
        dim, heads = self.q.weight.shape[1], self.num_heads
        own = (torch.arange(dim) // (dim // heads) == torch.arange(heads)[:, None]).double()
        mask = torch.stack([own * (dim // heads) ** -0.5, own]).reshape(2, 1, heads, 1, dim)
        return mask.to(device=device, dtype=dtype)

    def _apply(self, fn, *args, **kwargs):
        # ``.double()`` / ``.half()`` would round the float32 scale again: rebuild it
        module = super()._apply(fn, *args, **kwargs)
        self.head_mask = self._head_mask(self.head_mask.dtype, self.head_mask.device)
        return module

    def weights(
        self, x: Tensor, query: Tensor, offset: Tensor | None, norm: nn.LayerNorm | None = None
    ) -> Tensor:
        """The attention weights ``(B, N, heads * M)`` of ``x`` (B, N, C) (queries from
        ``norm(x)`` with ``norm``, recomputed for the backward pass instead of kept) for
        one block's :class:`KeyTerms` ``query`` and ``offset``."""
        batch, tokens, _ = x.shape
        if norm is not None:
            scores = norm_then_matmul(x, norm, query, offset, linear=False)
        elif offset is not None:
            scores = torch.baddbmm(offset.to(query.dtype), x.to(query.dtype), query)
        else:
            scores = torch.bmm(x.to(query.dtype), query)
        # softmax over the M keys of each head: (B, N, heads, M) -> (B, N, heads * M)
        attn = scores.reshape(batch, tokens, self.num_heads, -1).softmax(dim=-1)
        if self.training and self.attn_drop > 0:
            attn = F.dropout(attn, p=self.attn_drop)
        return attn.reshape(batch, tokens, -1)

    def forward(self, x: Tensor, kv: Tensor, norm: nn.LayerNorm | None = None) -> Tensor:
        """``x`` (B, N, C) attends to ``kv`` (B, M, C); returns (B, N, C). With ``norm``
        the queries come from ``norm(x)``, which is then recomputed for the backward
        pass instead of kept (:func:`norm_then_matmul`)."""
        terms = key_terms([self], paired_keys(kv.unsqueeze(2)))
        attn = self.weights(x, terms.queries[0], terms.offsets[0], norm)
        bias = terms.proj_bias[0].to(terms.values[0].dtype)  # (C,)
        return torch.baddbmm(bias, attn.to(bias.dtype), terms.values[0])


class _NormThenMatmul(torch.autograd.Function):
    """``LN(x) @ rhs`` that keeps ``x`` and the norm's statistics for the backward pass,
    not ``LN(x)``, which it recomputes there. ``rhs``: a Linear's weight (``LN(x)
    W^T + b``) or a per-sample ``(B, C, K)`` matrix (``linear=False``; ``bias``, if
    given, broadcasts to ``(B, N, K)``: one ``baddbmm``)."""

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps, rhs, bias, linear):
        shape = [x.shape[-1]]
        normed, mean, rstd = torch.ops.aten.native_layer_norm(x, shape, norm_weight, norm_bias, eps)
        ctx.save_for_backward(x, mean, rstd, norm_weight, norm_bias, rhs)
        ctx.eps, ctx.linear = eps, linear
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.bias_shape = None if bias is None else bias.shape
        if linear:
            return F.linear(normed, rhs, bias)
        if bias is None:
            return torch.matmul(normed.to(rhs.dtype), rhs)
        return torch.baddbmm(bias.to(rhs.dtype), normed.to(rhs.dtype), rhs)

    @staticmethod
    def backward(ctx, grad):
        x, mean, rstd, norm_weight, norm_bias, rhs = ctx.saved_tensors
        shape = [x.shape[-1]]
        normed = torch.ops.aten.native_layer_norm(x, shape, norm_weight, norm_bias, ctx.eps)[0]
        normed = normed.to(grad.dtype)
        grad_rhs = grad_bias = None
        if ctx.linear:
            grad_normed = torch.matmul(grad, rhs.to(grad.dtype))
            flat = grad.reshape(-1, grad.shape[-1])
            if ctx.needs_input_grad[4]:
                grad_rhs = (flat.t() @ normed.reshape(-1, normed.shape[-1])).to(rhs.dtype)
            if ctx.bias_dtype is not None and ctx.needs_input_grad[5]:
                grad_bias = flat.sum(dim=0).to(ctx.bias_dtype)
        else:
            grad_normed = torch.matmul(grad, rhs.to(grad.dtype).transpose(-1, -2))
            if ctx.needs_input_grad[4]:
                grad_rhs = torch.matmul(normed.transpose(-1, -2), grad).to(rhs.dtype)
            if ctx.bias_dtype is not None and ctx.needs_input_grad[5]:
                grad_bias = grad.sum_to_size(ctx.bias_shape).to(ctx.bias_dtype)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        grad_x, grad_weight, grad_norm_bias = torch.ops.aten.native_layer_norm_backward(
            grad_normed.to(x.dtype), x, shape, mean, rstd, norm_weight, norm_bias, mask
        )
        return grad_x, grad_weight, grad_norm_bias, None, grad_rhs, grad_bias, None


def norm_then_matmul(x: Tensor, norm: nn.LayerNorm, rhs: Tensor, bias=None, linear=True):
    """``F.linear(norm(x), rhs, bias)`` (``linear=True``) or ``norm(x) @ rhs (+ bias)``,
    keeping ``x`` instead of ``norm(x)`` for the backward pass: the same values and
    gradients, one token-wide tensor less per norm."""
    if not torch.is_grad_enabled():
        normed = norm(x)
        if linear:
            return F.linear(normed, rhs, bias)
        if bias is None:
            return torch.matmul(normed.to(rhs.dtype), rhs)
        return torch.baddbmm(bias.to(rhs.dtype), normed.to(rhs.dtype), rhs)
    return _NormThenMatmul.apply(x, norm.weight, norm.bias, norm.eps, rhs, bias, linear)


class _GeluLinear(torch.autograd.Function):
    """``Linear(GELU(h))`` that keeps ``h`` (not ``GELU(h)``) for the backward pass."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(hidden, weight)
        ctx.bias_dtype = None if bias is None else bias.dtype
        bias = None if bias is None else bias.to(hidden.dtype)
        return F.linear(F.gelu(hidden), weight.to(hidden.dtype), bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        hidden, weight = ctx.saved_tensors
        dtype = grad.dtype
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_act = torch.matmul(grad, weight.to(dtype))  # (..., out) -> (..., in)
            grad_hidden = torch.ops.aten.gelu_backward(grad_act.to(hidden.dtype), hidden)
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            act = F.gelu(hidden).to(dtype).reshape(-1, hidden.shape[-1])  # recomputed
            grad_weight = (flat.t() @ act).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = flat.sum(dim=0).to(ctx.bias_dtype)
        return grad_hidden, grad_weight, grad_bias


def gelu_linear(hidden: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(F.gelu(hidden), weight, bias)`` whose backward recomputes the GELU from
    ``hidden`` instead of keeping its output: the same values and gradients, with one
    tensor of ``hidden``'s size less kept for the backward pass."""
    if not torch.is_grad_enabled() or not (hidden.requires_grad or weight.requires_grad):
        bias = None if bias is None else bias.to(hidden.dtype)
        return F.linear(F.gelu(hidden), weight.to(hidden.dtype), bias)
    return _GeluLinear.apply(hidden, weight, bias)


class SideBlock(nn.Module):
    """One side block: cross-attention to the ViT's key tokens, fine map, MLP.

    ``x = x + DropPath(CrossAttn(LN1(x), kv))``; ``x = x + fine``;
    ``x = x + DropPath(MLP(LN2(x)))`` with ``MLP = Linear -> GELU -> Linear``. The
    MLP's second layer keeps only the GELU's input for the backward pass and
    recomputes the activation there (:func:`gelu_linear`), and both norms are
    recomputed from their inputs (:func:`norm_then_matmul`): the same gradients, one
    hidden-width and two token-wide tensors less per block.

    Args:
        dim (int): Token width C.
        num_heads (int): Cross-attention heads.
        mlp_ratio (float): MLP hidden width / C. Defaults to 4.
        qkv_bias (bool): Bias on q, k and v. Defaults to True.
        drop_path (float): Stochastic-depth rate of both branches. Defaults to 0.

    Parameters (mlp_ratio 4): ``12 * C^2 + 13 * C``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f'mlp_ratio must give a hidden width >= 1, got {mlp_ratio}')
        self.norm1 = nn.LayerNorm(dim, eps=SIDE_NORM_EPS)
        self.attn = MetaCrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=SIDE_NORM_EPS)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def drops_path(self) -> bool:
        """Whether stochastic depth is active (training with a rate above 0)."""
        return self.training and not isinstance(self.drop_path, nn.Identity)

    def forward(
        self, x: Tensor, kv: Tensor | None, fine: Tensor, terms: tuple | None = None
    ) -> Tensor:
        """``x`` (B, N, C), ``kv`` (B, M, C), ``fine`` (B, N, C) -> (B, N, C).

        ``terms``: this block's ``(query, offset, values, proj_bias)`` as its stage
        computed them for all its blocks at once (:func:`key_terms`), and optionally its
        MLP's ``(W_1, b_1, W_2, b_2)`` as the stage copied them
        (:func:`~.side_keys.stage_weights`); ``kv`` is then not read. Either way the
        block runs as a module call (:meth:`run`), so that forward hooks (the
        benchmark's profiler) see it."""
        if terms is None:
            keys = key_terms([self.attn], paired_keys(kv.unsqueeze(2)))
            terms = (keys.queries[0], keys.offsets[0], keys.values[0], keys.proj_bias[0])
        return self.run(x, terms[0], terms[1], terms[2], fine, *terms[3:])

    def run(
        self,
        x: Tensor,
        query: Tensor,
        offset: Tensor | None,
        values: Tensor,
        fine: Tensor,
        proj_bias: Tensor | None = None,
        mlp: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
    ) -> Tensor:
        """The block on side tokens ``x`` (B, N, C) from its keys' precomputed
        :class:`KeyTerms` (``query``, ``offset``, ``values``) and ``fine`` (B, N, C).

        ``proj_bias`` None: ``fine`` already holds the output projection's bias (only
        without active stochastic depth), and ``x + fine + attention`` is one
        ``baddbmm``; otherwise ``proj_bias`` (C,) is added to the attention output
        before its DropPath. ``mlp``: the MLP's ``(W_1, b_1, W_2, b_2)`` as the caller
        copied them (cast once for a whole stage under autocast); None reads its own."""
        attn = self.attn.weights(x, query, offset, norm=self.norm1)  # (B, N, heads * M)
        if proj_bias is None and x.dtype == values.dtype:
            x = torch.baddbmm(x + fine, attn, values)
        elif proj_bias is None:  # autocast: the residual stream stays in its own dtype
            x = x + torch.bmm(attn.to(values.dtype), values) + fine
        else:
            out = torch.baddbmm(proj_bias.to(values.dtype), attn.to(values.dtype), values)
            x = x + self.drop_path(out) + fine
        if mlp is None:
            fc1, _, fc2 = self.mlp
            mlp = (fc1.weight, fc1.bias, fc2.weight, fc2.bias)
        hidden = norm_then_matmul(x, self.norm2, mlp[0], mlp[1])
        return x + self.drop_path(gelu_linear(hidden, mlp[2], mlp[3]))


class HierarchicalSideNetwork(nn.Module):
    """Four stages of side blocks at strides 4 / 8 / 16 / 32, run one block at a time.

    Stage 1 embeds the image with :class:`ConvStem`; stage s > 1 embeds the previous
    stage's map with :class:`OverlapPatchEmbed`. Each stage ends with a LayerNorm
    and is returned as a map ``(B, C_s, H_s, W_s)``. The caller drives it::

        tokens, hw = net.embed(0, image)
        for j in range(depths[0]):
            tokens = net.blocks[0][j](tokens, kv_j, fine_j)
        fmap = net.finish(0, tokens, hw)
        tokens, hw = net.embed(1, fmap)  # and so on

    Args:
        channels (Sequence[int]): Width of each stage.
        num_heads (Sequence[int]): Cross-attention heads of each stage.
        depths (Sequence[int]): Side blocks per stage.
        mlp_ratio (float): MLP hidden width / width. Defaults to 4.
        qkv_bias (bool): Bias on q, k and v. Defaults to True.
        drop_path_rate (float): Stochastic depth, rising linearly from 0 over all
            side blocks to this value. Defaults to 0.
        in_channels (int): Image channels. Defaults to 3.
    """

    def __init__(
        self,
        channels: Sequence[int],
        num_heads: Sequence[int],
        depths: Sequence[int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        channels, num_heads, depths = list(channels), list(num_heads), list(depths)
        if not (len(channels) == len(num_heads) == len(depths)) or not channels:
            raise ValueError(
                'channels, num_heads and depths need one entry per stage, got '
                f'{channels}, {num_heads} and {depths}'
            )
        if min(channels) < 1 or min(depths) < 1:
            raise ValueError(f'widths and depths must be >= 1, got {channels} and {depths}')
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        self.channels = tuple(channels)
        self.depths = tuple(depths)
        self.stem = ConvStem(channels[0], in_channels)
        self.embeds = nn.ModuleList(
            OverlapPatchEmbed(c_in, c_out) for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.blocks = nn.ModuleList()
        start = 0
        for dim, heads, depth in zip(channels, num_heads, depths):
            self.blocks.append(
                nn.ModuleList(
                    SideBlock(dim, heads, mlp_ratio, qkv_bias, drop_path=rates[start + j])
                    for j in range(depth)
                )
            )
            start += depth
        self.norms = nn.ModuleList(nn.LayerNorm(c, eps=SIDE_NORM_EPS) for c in channels)
        self.reset_parameters()

    @property
    def strides(self) -> tuple[int, ...]:
        """Output stride of each stage relative to the input image."""
        first = self.stem.stride
        return tuple(first * OverlapPatchEmbed.stride**s for s in range(len(self.channels)))

    def reset_parameters(self) -> None:
        init_side_weights(self)

    def embedding(self, stage: int) -> ConvStem | OverlapPatchEmbed:
        """The module that embeds ``stage``'s input: the stem, or a patch embedding."""
        return self.stem if stage == 0 else self.embeds[stage - 1]

    def embed(
        self, stage: int, x: Tensor, weights: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, tuple[int, int]]:
        """Tokens entering ``stage`` from the image (stage 0) or the previous map;
        ``weights``: the embedding's ``product_weights()`` as the caller cast them."""
        return self.embedding(stage)(x, weights)

    def finish(self, stage: int, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """The stage's closing LayerNorm; tokens (B, H*W, C) -> map (B, C, H, W)."""
        return tokens_to_map(self.norms[stage](x), hw)
