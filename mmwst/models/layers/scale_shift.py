"""Folding a per-channel scale and shift ``y = gamma * o(x) + beta`` into the layer ``o``
that produced ``o(x)`` (SSF; RLRR's SSF part), and undoing it safely.

``o`` has a weight whose first dimension is the output channel (Linear, conv, LayerNorm)
and a bias. Folding multiplies the weight's rows and the bias by ``gamma`` and adds
``beta``. Undoing it divides by ``gamma``, which loses the weight where ``gamma`` is near
zero; there the original weight and bias are kept at fold time and restored exactly
(like peft's safe merge, without the refusal: the fold itself is always exact).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: |gamma| below this: keep the originals rather than divide by it later.
SAFE_SCALE = 1e-3


def fold_scale_shift(
    weight: Tensor, bias: Tensor, gamma: Tensor, beta: Tensor
) -> tuple[Tensor, Tensor] | None:
    """Fold ``gamma``, ``beta`` (C,) into ``weight`` (C, ...) and ``bias`` (C,) in place.

    Returns:
        The original ``(weight, bias)`` when some ``|gamma|`` is below :data:`SAFE_SCALE`
        (pass them to :func:`unfold_scale_shift`), else None.
    """
    gamma, beta = gamma.to(weight.dtype), beta.to(bias.dtype)
    saved = None
    if bool((gamma.abs() < SAFE_SCALE).any()):
        saved = (weight.detach().clone(), bias.detach().clone())
    with torch.no_grad():
        # (C, ) -> (C, 1, ...) to scale the output channels of a Linear, conv or norm
        weight.mul_(gamma.view(-1, *([1] * (weight.dim() - 1))))
        bias.mul_(gamma).add_(beta)
    return saved


def unfold_scale_shift(
    weight: Tensor,
    bias: Tensor,
    gamma: Tensor,
    beta: Tensor,
    saved: tuple[Tensor, Tensor] | None = None,
) -> None:
    """Undo :func:`fold_scale_shift` in place (restoring ``saved`` when given)."""
    with torch.no_grad():
        if saved is not None:
            weight.copy_(saved[0])
            bias.copy_(saved[1])
            return
        gamma, beta = gamma.to(weight.dtype), beta.to(bias.dtype)
        bias.sub_(beta).div_(gamma)
        weight.div_(gamma.view(-1, *([1] * (weight.dim() - 1))))
