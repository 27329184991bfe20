"""LoRA: low-rank adaptation (Hu et al., ICLR 2022)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import autocast_dtype, cast_groups_in_one_copy
from .base import BaseTuner, HostSpec, TokenContext

QKV_SLICES = ('q', 'k', 'v')
TARGETS = (*QKV_SLICES, 'proj', 'fc1', 'fc2')


@MODELS.register_module()
class LoRA(BaseTuner):
    """``W x + (alpha / r) * B A x`` on chosen Linear layers of every block (paper Eq. 3).

    ``A`` (r x d_in) is kaiming-uniform (a = sqrt 5), ``B`` (d_out x r) is zero, so the
    model is unchanged at init. A fused ``qkv`` layer gets one independent (A, B) pair
    per selected slice, exactly as three separate q / k / v layers would. Mergeable.

    Parameters per target and block: r * (d_in + d_out); ViT-B/16, r = 8, targets
    q, v: 2 x 8 x (768 + 768) x 12 = **294,912**.

    Args:
        rank (int): r. Defaults to 8.
        alpha (float): Scaling numerator (scaling = alpha / rank). Defaults to 8.
        targets (Sequence[str]): Any of ``'q', 'k', 'v', 'proj', 'fc1', 'fc2'``.
            Defaults to ``('q', 'v')``.
        dropout (float): Dropout on the LoRA input. Defaults to 0.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.LoRA', rank=4)])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)  # 2 x 2 x 4 x (32 + 32)
        1024
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True
    mergeable = True

    def __init__(
        self,
        rank: int = 8,
        alpha: float = 8.0,
        targets: Sequence[str] = ('q', 'v'),
        dropout: float = 0.0,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg)
        unknown = set(targets) - set(TARGETS)
        if unknown or not targets:
            raise ValueError(
                f'LoRA targets must be a non-empty subset of {TARGETS}, got {tuple(targets)}'
            )
        if rank < 1:
            raise ValueError(f'LoRA rank must be >= 1, got {rank}')
        self.rank = rank
        self.scaling = alpha / rank
        self.targets = tuple(t for t in TARGETS if t in targets)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        # this forward pass's (A, B) of every target in the type the products run in,
        # cast in one copy (before_blocks) where it is not theirs
        self._cast: dict[str, list[Tensor]] = {}

    def build(self, host: HostSpec) -> None:
        self._layers = {}
        for spec in host.blocks:
            qkv_targets = [t for t in self.targets if t in QKV_SLICES]
            if qkv_targets:
                dim = spec.qkv.out_features // 3
                for t in qkv_targets:
                    self._add(f'{spec.index}_{t}', spec.qkv.in_features, dim)
                self._layers[spec.index, 'qkv'] = spec.qkv
                self._attach_qkv(spec.index, spec.qkv, qkv_targets)
            for t in self.targets:
                if t in QKV_SLICES:
                    continue
                linear = getattr(spec, t)
                key = f'{spec.index}_{t}'
                self._add(key, linear.in_features, linear.out_features)
                self._layers[spec.index, t] = linear
                self._attach(key, linear)
        self.reset_parameters()

    def _attach_qkv(self, index: int, qkv: nn.Linear, targets: list[str]) -> None:
        """Adapt the ``targets`` slices of block ``index``'s fused qkv projection: LoRA
        adds the low-rank delta to its output (a subclass may change the weight
        instead)."""
        self.hook_module(qkv, partial(self._qkv_delta, index, targets))

    def _attach(self, key: str, linear: nn.Linear) -> None:
        """Adapt one whole Linear (parameters under ``key``): its output plus the delta."""
        self.hook_module(linear, partial(self._delta, key))

    def param_count(self, host: HostSpec) -> int:
        """``r (d_in + d_out)`` per target of every block (q, k, v: one slice each)."""
        return sum(self.rank * (d_in + d_out) for d_in, d_out in self._target_shapes(host))

    def _target_shapes(self, host: HostSpec) -> list[tuple[int, int]]:
        """``(d_in, d_out)`` of every adapted weight (a q/k/v slice or a whole Linear)."""
        shapes = []
        for spec in host.blocks:
            for t in self.targets:
                if t in QKV_SLICES:
                    shapes.append((spec.qkv.in_features, spec.qkv.out_features // 3))
                else:
                    linear = getattr(spec, t)
                    shapes.append((linear.in_features, linear.out_features))
        return shapes

    def _add(self, key: str, d_in: int, d_out: int) -> None:
        self.lora_A[key] = nn.Parameter(torch.empty(self.rank, d_in))
        self.lora_B[key] = nn.Parameter(torch.zeros(d_out, self.rank))

    def reset_parameters(self) -> None:
        for key in self.lora_A:
            nn.init.kaiming_uniform_(self.lora_A[key], a=math.sqrt(5))
            nn.init.zeros_(self.lora_B[key])

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        """Where the products run in another type than the factors' (autocast's, or a
        frozen host's bf16 tokens), cast every target's ``A`` and ``B`` to it in one
        copy (:func:`cast_groups_in_one_copy`: one cast forward, one back) instead of two casts
        per target each way; the same values and gradients."""
        self._cast = {}
        if not self.merged:
            factors = {key: (self.lora_A[key], self.lora_B[key]) for key in self.lora_A}
            low = autocast_dtype(x.device.type) or x.dtype
            self._cast = cast_groups_in_one_copy(factors, low)
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._cast = {}
        return x

    def _low_rank(self, key: str, x: Tensor) -> Tensor:
        cast = self._cast.get(key)
        if cast is None or (cast[0].dtype != x.dtype and autocast_dtype(x.device.type) is None):
            cast = self.lora_A[key].to(x.dtype), self.lora_B[key].to(x.dtype)
        A, B = cast
        return F.linear(F.linear(self.dropout(x), A), B) * self.scaling

    def _delta(self, key: str, module, inputs, output: Tensor) -> Tensor:
        return output + self._low_rank(key, inputs[0])

    def _qkv_delta(self, index: int, targets: list[str], module, inputs, output: Tensor):
        x = inputs[0]
        dim = output.shape[-1] // 3
        parts = [
            self._low_rank(f'{index}_{t}', x)
            if t in targets
            else output.new_zeros(()).expand(*output.shape[:-1], dim)
            for t in QKV_SLICES
        ]
        return output + torch.cat(parts, dim=-1)

    def delta_weight(self, key: str) -> Tensor:
        """``scaling * B @ A`` for one target: the weight change LoRA adds."""
        return self.lora_B[key] @ self.lora_A[key] * self.scaling

    def _fold(self, sign: float) -> None:
        for (index, name), linear in self._layers.items():
            if name == 'qkv':
                dim = linear.out_features // 3
                for s, t in enumerate(QKV_SLICES):
                    if t in self.targets:
                        delta = self.delta_weight(f'{index}_{t}')
                        linear.weight[s * dim : (s + 1) * dim].add_(sign * delta)
            else:
                linear.weight.add_(sign * self.delta_weight(f'{index}_{name}'))

    def merge(self, host: HostSpec) -> None:
        self._fold(1.0)

    def unmerge(self, host: HostSpec) -> None:
        self._fold(-1.0)
