"""VPT: visual prompt tuning (Jia et al., ECCV 2022)."""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import cast_in_one_copy
from ..layers.tunable import concat_kv
from .base import BaseTuner, HostSpec, TokenContext


@MODELS.register_module()
class VPT(BaseTuner):
    """Learned prompt tokens: at the input (shallow) or at every layer (deep).

    On a ViT the prompts are inserted right after the prefix tokens (the class token),
    ``[cls, P, patches]``; VPT-deep replaces them with a fresh set before every block;
    they are removed before the final norm, so the output format is unchanged.

    On Swin (no global token sequence) the prompts act inside every window, as in the
    paper's Swin variant: each block's prompts pass through its ``norm1`` and frozen
    ``qkv`` and join every window's keys and values (shallow: the first block only).

    Init: uniform in ``±sqrt(6 / (3 * p * p + D))`` (xavier bound over the patch).
    Parameters: ViT-B/16, 10 prompts: shallow 7,680; deep 12 x 7,680 = **92,160**.

    Args:
        num_prompts (int): Prompt tokens per layer. Defaults to 10.
        deep (bool): VPT-deep (True) or VPT-shallow (False). Defaults to True.
        dropout (float): Dropout on the prompts. Defaults to 0.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.VPT', num_prompts=3)])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)  # deep: 2 x 3 x 32
        192
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    supported_hosts = ('vit', 'swin')
    host_reason = (
        "It adds prompt tokens to the sequence, which SAM's windowed attention has no "
        'place for (every token there sits on the patch grid); use a ViT or a Swin host.'
    )

    def __init__(
        self, num_prompts: int = 10, deep: bool = True, dropout: float = 0.0, init_cfg=None
    ) -> None:
        super().__init__(init_cfg)
        if num_prompts < 1:
            raise ValueError(f'num_prompts must be >= 1, got {num_prompts}')
        self.num_prompts = num_prompts
        self.deep = deep
        self.dropout = nn.Dropout(dropout)
        self.prompts = nn.ParameterList()

    def param_count(self, host: HostSpec) -> int:
        """``n`` prompt tokens of the block's width: before the first block (shallow) or
        before every block (deep)."""
        blocks = host.blocks if self.deep else host.blocks[:1]
        return sum(self.num_prompts * spec.dim for spec in blocks)

    def build(self, host: HostSpec) -> None:
        self.kind = host.host_kind
        blocks = host.blocks if self.deep else host.blocks[:1]
        patch = host.patch_size
        self._bounds = []
        for spec in blocks:
            self.prompts.append(nn.Parameter(torch.empty(1, self.num_prompts, spec.dim)))
            self._bounds.append(math.sqrt(6.0 / (3 * patch[0] * patch[1] + spec.dim)))
        if self.kind == 'swin':
            for i, spec in enumerate(blocks):
                self.hook_kv(spec.attn, partial(self._window_kv, i, spec.norm1, spec.qkv))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for prompt, bound in zip(self.prompts, self._bounds):
            nn.init.uniform_(prompt, -bound, bound)

    def _layer_prompts(self, dtype: torch.dtype) -> tuple[Tensor, ...]:
        """Every layer's prompts ``(1, P, D)`` for one pass, dropped out, in ``dtype``
        (the tokens'). Where that is not theirs - a frozen host held in bf16 - VPT-deep's
        prompts are cast in one copy (:func:`cast_in_one_copy`): one kernel forward and
        one back instead of one per layer each, with the same values."""
        prompts = [self.dropout(p) for p in self.prompts]
        if prompts[0].dtype == dtype:
            return tuple(prompts)
        if len(prompts) == 1:
            return (prompts[0].to(dtype),)
        return cast_in_one_copy(prompts, dtype)

    # ---- ViT: prompts in the token sequence ----------------------------------------
    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.kind != 'vit':
            return x
        start = ctx.num_prefix
        prompts = self._layer_prompts(x.dtype)
        ctx.state[self] = (start, prompts)
        ctx.num_prefix += self.num_prompts
        first = prompts[0].expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :start], first, x[:, start:]], dim=1)

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.kind != 'vit' or not self.deep or index == 0:
            return x
        start, prompts = ctx.state[self]
        end = start + self.num_prompts
        prompt = prompts[index].to(x.dtype).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :start], prompt, x[:, end:]], dim=1)

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.kind != 'vit':
            return x
        start, _ = ctx.state.pop(self)
        ctx.num_prefix -= self.num_prompts
        return torch.cat([x[:, :start], x[:, start + self.num_prompts :]], dim=1)

    # ---- Swin: prompts as extra keys/values of every window --------------------------
    def _window_kv(
        self, i: int, norm: nn.Module, qkv: nn.Linear, x: Tensor, k: Tensor, v: Tensor
    ) -> tuple[Tensor, Tensor]:
        heads, head_dims = k.shape[1], k.shape[3]
        prompts = norm(self.dropout(self.prompts[i]).to(x.dtype))  # (1, P, C)
        _, pk, pv = F.linear(prompts, qkv.weight, qkv.bias).chunk(3, dim=-1)
        # (1, P, C) -> (1, heads, P, head_dims)
        pk = pk.reshape(1, -1, heads, head_dims).transpose(1, 2)
        pv = pv.reshape(1, -1, heads, head_dims).transpose(1, 2)
        return concat_kv(k, v, pk, pv)
