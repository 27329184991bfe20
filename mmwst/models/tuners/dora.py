"""DoRA: weight-decomposed low-rank adaptation (Liu et al., ICML 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import autocast_dtype, cast_groups_in_one_copy
from .base import HostSpec, TokenContext
from .lora import QKV_SLICES, LoRA


@MODELS.register_module()
class DoRA(LoRA):
    """Magnitude and direction of each adapted weight, LoRA on the direction.

    Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", ICML 2024
    (https://arxiv.org/abs/2402.09353), Eq. 5. For a frozen Linear weight ``W``
    (d_out x d_in) with LoRA's update ``Delta = (alpha / r) B A``:

        ``W' = m * (W + Delta) / ||W + Delta||``

    where ``||.||`` is the L2 norm of each output row (over the inputs) and ``m``
    (d_out) is a learned magnitude. mmwst stores ``m = ||W|| * (1 + g)`` with ``g``
    (d_out) trained and zero at init, so the tuner is the identity at init whatever frozen
    weights are loaded afterwards (the paper initialises ``m = ||W||``: the same value,
    reached without reading the weights at construction). A fused ``qkv`` weight gets one
    ``(A, B, g)`` per selected slice; its other slices stay as they are. Mergeable: the
    merged weight is ``W'``; unmerging restores the saved ``W``.

    Parameters per target and block: ``r (d_in + d_out) + d_out``; ViT-B/16, r = 8, q and
    v: ``2 x (8 x 1536 + 768) x 12`` = **313,344**.

    Args:
        rank (int): r. Defaults to 8.
        alpha (float): LoRA's scaling numerator (scaling = alpha / r). Defaults to 8.
        targets (Sequence[str]): Any of ``'q', 'k', 'v', 'proj', 'fc1', 'fc2'``.
            Defaults to ``('q', 'v')``.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.DoRA', rank=4)])
        >>> sum(p.numel() for p in model.tuners.parameters())  # 2 x 2 x (4 x 64 + 32)
        1152
        >>> model(torch.rand(1, 3, 32, 32))[0].shape
        torch.Size([1, 32])
    """

    on_board = False  # no mini-VTAB row yet

    def __init__(
        self,
        rank: int = 8,
        alpha: float = 8.0,
        targets: Sequence[str] = ('q', 'v'),
        init_cfg=None,
    ) -> None:
        super().__init__(rank=rank, alpha=alpha, targets=targets, init_cfg=init_cfg)
        self.magnitude = nn.ParameterDict()  # g: m = ||W|| (1 + g)
        self._saved: dict[tuple[int, str], Tensor] = {}

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        """Under autocast, every target's ``A``, ``B`` and (where the frozen weights are
        in autocast's type too) magnitude ``g`` are cast in one copy
        (:func:`cast_groups_in_one_copy`: one cast forward, one back), where the weight
        functions' products and casts cast each, forward and backward; the same values
        and gradients. Without autocast ``B A`` stays in the factors' type."""
        self._cast = {}
        low = autocast_dtype(x.device.type)
        if self.merged or low is None:
            return x
        with_g = all(linear.weight.dtype == low for linear in self._layers.values())
        factors = {
            key: [self.lora_A[key], self.lora_B[key], *([self.magnitude[key]] if with_g else [])]
            for key in self.lora_A
        }
        self._cast = cast_groups_in_one_copy(factors, low)
        return x

    def _attach_qkv(self, index: int, qkv: nn.Linear, targets: list[str]) -> None:
        """DoRA replaces the weight of the fused qkv projection (its adapted slices
        decomposed) instead of adding to its output."""
        self.hook_weight(qkv, partial(self._qkv_weight, index, targets))

    def _attach(self, key: str, linear: nn.Linear) -> None:
        self.hook_weight(linear, partial(self._weight, key))

    def param_count(self, host: HostSpec) -> int:
        """LoRA's ``r (d_in + d_out)`` plus the magnitude ``d_out``, per target."""
        return sum(self.rank * (i + o) + o for i, o in self._target_shapes(host))

    def _add(self, key: str, d_in: int, d_out: int) -> None:
        super()._add(key, d_in, d_out)
        self.magnitude[key] = nn.Parameter(torch.zeros(d_out))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for g in self.magnitude.values():
            nn.init.zeros_(g)

    def decomposed(self, key: str, weight: Tensor) -> Tensor:
        """``W'`` for one target from its frozen weight ``W`` (d_out x d_in)."""
        cast = self._cast.get(key)
        if cast is not None and autocast_dtype(weight.device.type) == cast[0].dtype:
            # the factors as before_blocks cast them: autocast's product of the two
            delta = (cast[1] @ cast[0] * self.scaling).to(weight.dtype)
            g = cast[2] if len(cast) == 3 else self.magnitude[key].to(weight.dtype)
        else:
            delta = self.delta_weight(key).to(weight.dtype)
            g = self.magnitude[key].to(weight.dtype)
        direction = weight + delta
        # (d_out, 1): ||W|| / ||W + Delta|| first, so that it is exactly 1 at init (Delta
        # is exactly zero) and W' is bit for bit W
        ratio = weight.norm(dim=1, keepdim=True).detach() / direction.norm(dim=1, keepdim=True)
        return direction * (ratio * (1 + g[:, None]))

    def _weight(self, key: str, weight: Tensor, bias: Tensor | None):
        return self.decomposed(key, weight), bias

    def _qkv_weight(self, index: int, targets: list[str], weight: Tensor, bias: Tensor | None):
        dim = weight.shape[0] // 3
        rows = [
            self.decomposed(f'{index}_{t}', weight[s * dim : (s + 1) * dim])
            if t in targets
            else weight[s * dim : (s + 1) * dim]
            for s, t in enumerate(QKV_SLICES)
        ]
        return torch.cat(rows, dim=0), bias

    def merge(self, host: HostSpec) -> None:
        for (index, name), linear in self._layers.items():
            self._saved[index, name] = linear.weight.detach().clone()
            if name == 'qkv':
                targets = [t for t in self.targets if t in QKV_SLICES]
                merged, _ = self._qkv_weight(index, targets, linear.weight, None)
            else:
                merged = self.decomposed(f'{index}_{name}', linear.weight)
            linear.weight.copy_(merged)

    def unmerge(self, host: HostSpec) -> None:
        for key, linear in self._layers.items():
            linear.weight.copy_(self._saved.pop(key))
