"""Extension points inside frozen host layers, with parameter names left untouched.

Tuners change what a frozen layer computes without renaming its parameters (so
mmpretrain checkpoints keep loading as they are). Two mechanisms exist:

* Output changes use PyTorch's own forward hooks (``out + delta(x)``: LoRA, SSF,
  adapters, PATT).
* Changes that need the *weights* or the *attention internals* swap the layer's class
  for a subclass that adds one extension point and computes the same thing when no
  tuner uses it - the technique ``torch.nn.utils.parametrize`` uses:

  - :class:`TunableLinear`: ``weight_fns`` map ``(weight, bias)`` to the effective
    ``(weight, bias)`` before a single ``F.linear`` (RLRR trains
    ``W * (1 + s_out s_in)`` at the cost of one matmul, not two);
  - :class:`TunableMultiheadAttention` (mmpretrain ViT; every ViT host uses it, as it
    computes the same with fewer kernels in the backward pass) and
    :class:`TunableWindowMSA` (mmpretrain Swin): ``kv_fns`` map ``(x, k, v)`` to
    ``(k', v')`` - extra key/value tokens (prefix tuning, VPT on Swin) - and the
    attention runs as one fused ``scaled_dot_product_attention`` call.

Callbacks must be bound methods or ``functools.partial`` of them (never closures), so
``copy.deepcopy`` of a model (EMA) rebinds them to the copied tuners.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.wrappers import Linear as MMCVLinear
from mmpretrain.models.utils.attention import MultiheadAttention, WindowMSA
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

WeightFn = Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]
KVFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def _add_fn(store: OrderedDict, fn: Callable) -> RemovableHandle:
    handle = RemovableHandle(store)
    store[handle.id] = fn
    return handle


class TunableLinear(nn.Linear):
    """``nn.Linear`` whose effective weight and bias can be rewritten by tuners."""

    weight_fns: OrderedDict

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.weight, self.bias
        for fn in self.weight_fns.values():
            weight, bias = fn(weight, bias)
        return F.linear(x, weight, bias)


def add_weight_fn(linear: nn.Linear, fn: WeightFn) -> RemovableHandle:
    """Let ``fn`` rewrite ``linear``'s ``(weight, bias)`` in every forward pass."""
    if not isinstance(linear, nn.Linear):
        raise TypeError(f'expected an nn.Linear, got {type(linear).__name__}')
    if not isinstance(linear, TunableLinear):
        # mmcv's Linear (the MLP layers of mmpretrain's FFN) differs from nn.Linear only
        # for empty inputs on torch <= 1.5, so it computes the same as TunableLinear
        if type(linear) not in (nn.Linear, MMCVLinear):
            raise TypeError(
                f"cannot extend a {type(linear).__name__}; only nn.Linear and mmcv's Linear"
            )
        linear.__class__ = TunableLinear
        linear.weight_fns = OrderedDict()
    return _add_fn(linear.weight_fns, fn)


class TunableMultiheadAttention(MultiheadAttention):
    """mmpretrain ``MultiheadAttention`` with extra key/value tokens from tuners."""

    kv_fns: OrderedDict

    def forward(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        # (B, N, 3*C) -> (3, B, heads, N, head_dims)
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # backward: one stack, not three scatters and two sums
        for fn in self.kv_fns.values():
            k, v = fn(x, k, v)  # (B, heads, N + extra, head_dims)
        attn_drop = self.attn_drop if self.training else 0.0
        x = self.scaled_dot_product_attention(q, k, v, dropout_p=attn_drop)
        x = x.transpose(1, 2).reshape(B, N, self.embed_dims)  # (B, N, C)
        x = self.proj(x)
        x = self.out_drop(self.gamma1(self.proj_drop(x)))
        if self.v_shortcut:
            x = v.squeeze(1) + x
        return x


class TunableWindowMSA(WindowMSA):
    """mmpretrain Swin ``WindowMSA`` as one fused attention call, with extra key/values.

    The relative position bias and the shifted-window mask become the additive
    attention mask of ``scaled_dot_product_attention``; extra key tokens get zero bias
    and are never masked.
    """

    kv_fns: OrderedDict

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B_, N, C = x.shape
        # (B_, N, 3*C) -> (3, B_, heads, N, C/heads)
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        for fn in self.kv_fns.values():
            k, v = fn(x, k, v)
        extra = k.shape[2] - N
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(N, N, -1).permute(2, 0, 1)  # (heads, N, N)
        bias = bias.unsqueeze(0)  # (1, heads, N, N)
        if mask is not None:
            nW = mask.shape[0]
            # (nW, N, N) -> (B_/nW * nW, heads, N, N) via broadcasting over the batch
            bias = (bias + mask.unsqueeze(1)).repeat(B_ // nW, 1, 1, 1)
        if extra:
            bias = F.pad(bias, (0, extra))  # extra keys: zero bias, visible to every query
        bias = bias.to(q.dtype)
        attn_drop = self.attn_drop.p if self.training else 0.0
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=attn_drop, scale=self.scale
        )
        x = x.transpose(1, 2).reshape(B_, N, C)  # (B_, N, C)
        x = self.proj(x)
        return self.proj_drop(x)


_ATTENTION_SWAPS = {MultiheadAttention: TunableMultiheadAttention, WindowMSA: TunableWindowMSA}


def make_tunable_attention(attn: nn.Module) -> nn.Module:
    """Swap ``attn``'s class for its tunable twin (same parameters, same output)."""
    if isinstance(attn, tuple(_ATTENTION_SWAPS.values())) or hasattr(attn, 'kv_fns'):
        return attn  # tunable already (or built with kv_fns, as EVA-02's attention)
    target = _ATTENTION_SWAPS.get(type(attn))
    if target is None:
        raise TypeError(
            f'no tunable version of {type(attn).__name__}; supported: '
            f'{[cls.__name__ for cls in _ATTENTION_SWAPS]}'
        )
    attn.__class__ = target
    attn.kv_fns = OrderedDict()
    return attn


def add_kv_fn(attn: nn.Module, fn: KVFn) -> RemovableHandle:
    """Let ``fn(x, k, v) -> (k', v')`` change the keys and values of ``attn``."""
    make_tunable_attention(attn)
    return _add_fn(attn.kv_fns, fn)


def concat_kv(k: Tensor, v: Tensor, extra_k: Tensor, extra_v: Tensor) -> tuple[Tensor, Tensor]:
    """Append extra key/value tokens (``(B or 1, heads, P, head_dims)``) to ``k``, ``v``."""
    B = k.shape[0]
    extra_k = extra_k.to(k.dtype).expand(B, -1, -1, -1)
    extra_v = extra_v.to(v.dtype).expand(B, -1, -1, -1)
    return torch.cat([k, extra_k], dim=2), torch.cat([v, extra_v], dim=2)
