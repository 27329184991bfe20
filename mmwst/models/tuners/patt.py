"""PATT: parallel attention (V-PETL, Yu et al., arXiv 2210.00788)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import autocast_dtype, cast_groups_in_one_copy
from .base import BaseTuner, HostSpec, TokenContext

#: slots of the fused ``qkv`` output, in row order
QKV_SLOTS = ('q', 'k', 'v')
MODES = ('kv', 'qv', 'qk', 'qkv')


@MODELS.register_module()
class PATT(BaseTuner):
    r"""Parallel attention: a tanh bottleneck beside ``qkv`` that shifts keys and values.

    V-PETL's variant of prefix tuning (Yu et al., "Towards a Unified View on Visual
    Parameter-Efficient Transfer Learning", arXiv 2210.00788; the PATT module, whose
    equations are written out below). With ``X`` the attention input (the tokens after
    ``norm1``; on Swin after padding, the cyclic shift and the window partition -
    exactly the input of the fused ``qkv`` layer), every block computes

    .. math::

        [\Delta K, \Delta V] = \mathrm{split}(\tanh(X W_{down} + b_{down})
        W_{up} + b_{up}), \quad K' = K + s \Delta K, \quad V' = V + s \Delta V,

    and the frozen attention then runs with ``Q, K', V'`` and the frozen output
    projection. The bottleneck is placed as a forward hook on ``qkv`` that adds
    ``s * delta`` to the selected q / k / v slices of its output, so the per-head reshape, the
    relative position bias and the shifted-window mask of the host stay untouched
    and the fused attention kernel is kept. ``mode`` chooses which of ``q``, ``k``,
    ``v`` are shifted (``W_up`` is ``r x (len(mode) * D)``).

    Init: PyTorch's default ``nn.Linear`` init for both layers (not zero), so the
    model is **not** unchanged at init. Not mergeable (the tanh is input-dependent).

    Parameters per block of width ``D``: ``D*r + r + r*m*D + m*D`` with ``m`` the
    number of shifted slots (2 for ``'kv'``, i.e. ``2305*r + 1536`` at D = 768).
    ViT-B/16, ``'kv'``: r = 8 **239,712**; r = 16 **460,992**; r = 128 **3,558,912**.

    Args:
        rank (int): Bottleneck width r. Defaults to 128 (the paper's; r <= 16 suits
            VTAB-1k).
        scale (float): s, the fixed factor on the shifts. Defaults to 0.8.
        mode (str): Which slots to shift: ``'kv'``, ``'qv'``, ``'qk'`` or ``'qkv'``.
            Defaults to 'kv'.
        init_cfg (dict, optional): mmengine init config. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.PATT', rank=4)])
        >>> model(torch.rand(2, 3, 32, 32))[0].shape
        torch.Size([2, 32])
    """

    def __init__(
        self, rank: int = 128, scale: float = 0.8, mode: str = 'kv', init_cfg=None
    ) -> None:
        super().__init__(init_cfg)
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f'PATT rank must be an int, got {type(rank).__name__} ({rank!r})')
        if rank < 1:
            raise ValueError(f'PATT rank must be >= 1, got {rank}; use e.g. rank=8')
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise TypeError(f'PATT scale must be a number, got {type(scale).__name__} ({scale!r})')
        if mode not in MODES:
            raise ValueError(f'PATT mode must be one of {MODES}, got {mode!r}')
        self.rank = rank
        self.scale = float(scale)
        self.mode = mode
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        # this forward pass's (W_down, b_down, W_up, b_up) of every block in the type the
        # products run in, cast in one copy (before_blocks) where it is not theirs
        self._cast: dict[str, list[Tensor]] = {}

    def param_count(self, host: HostSpec) -> int:
        """Per block: ``Linear(D -> r)`` and ``Linear(r -> slots x D)``, with biases
        (ViT-B, kv: ``2305 r + 1536``)."""
        slots = len(self.mode)
        return sum(
            spec.dim * self.rank + self.rank + self.rank * slots * spec.dim + slots * spec.dim
            for spec in host.blocks
        )

    def build(self, host: HostSpec) -> None:
        slots = len(self.mode)
        for spec in host.blocks:
            key = str(spec.index)
            dim = spec.qkv.in_features
            if spec.qkv.out_features != 3 * dim:
                raise ValueError(
                    f'PATT expects a fused qkv layer with 3 x {dim} outputs in block '
                    f'{spec.index}, got {spec.qkv.out_features}'
                )
            self.down[key] = nn.Linear(dim, self.rank)
            self.up[key] = nn.Linear(self.rank, slots * dim)
            self.hook_module(spec.qkv, partial(self._shift_qkv, key))

    def reset_parameters(self) -> None:
        for layer in (*self.down.values(), *self.up.values()):
            layer.reset_parameters()  # PyTorch's default Linear init

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        """Where the products run in another type than the weights' (autocast's, or a
        frozen host's bf16 tokens), cast every block's four weights and biases to it in
        one copy (:func:`cast_groups_in_one_copy`: one cast forward, one back) instead of four
        casts per block each way; the same values and gradients."""
        low = autocast_dtype(x.device.type) or x.dtype
        self._cast = cast_groups_in_one_copy({key: self._weights(key) for key in self.down}, low)
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._cast = {}
        return x

    def _weights(self, key: str) -> list[Tensor]:
        down, up = self.down[key], self.up[key]
        return [down.weight, down.bias, up.weight, up.bias]

    def delta(self, key: str, x: Tensor) -> Tensor:
        """``tanh(x W_down + b_down) W_up + b_up``: ``(..., D) -> (..., m * D)``."""
        weights = self._cast.get(key)
        if weights is None or (
            weights[0].dtype != x.dtype and autocast_dtype(x.device.type) is None
        ):
            weights = [t.to(x.dtype) for t in self._weights(key)]
        down_w, down_b, up_w, up_b = weights
        return F.linear(torch.tanh(F.linear(x, down_w, down_b)), up_w, up_b)

    def _shift_qkv(self, key: str, module, inputs, output: Tensor) -> Tensor:
        x = inputs[0]  # (..., N, D): the attention input
        dim = output.shape[-1] // 3
        # (..., N, m*D) -> m tensors of (..., N, D), in q, k, v order
        shifts = iter(self.delta(key, x).split(dim, dim=-1))
        parts = [
            next(shifts) if slot in self.mode else output.new_zeros(()).expand(*x.shape[:-1], dim)
            for slot in QKV_SLOTS
        ]
        return output + self.scale * torch.cat(parts, dim=-1)  # (..., N, 3*D)
