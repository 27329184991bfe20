"""Casting many small parameters for autocast in one copy.

Under autocast every float32 weight a matrix product reads is cast to the lower
precision at that product, and its gradient cast back: two kernels per weight and step.
A branch or side network of many small layers (WST's bottlenecks, HST's meta tokens)
pays more in these launches than in arithmetic. :func:`cast_in_one_copy` casts a list
of parameters with one concatenation and one cast instead - the same values (a cast
rounds each element alone), and in the backward pass one concatenation of the
gradients and one cast back, each parameter's gradient a contiguous piece of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """Autocast's lower precision where it is on for ``device_type``, else None."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def cast_in_one_copy(tensors: Sequence[Tensor], dtype: torch.dtype) -> tuple[Tensor, ...]:
    """``tensors`` cast to ``dtype``, each in its own shape, by one concatenation of
    their elements and one cast (views of that one copy); gradients flow back to each."""
    flat = torch.cat([t.reshape(-1) for t in tensors]).to(dtype)
    pieces = flat.split([t.numel() for t in tensors])
    return tuple(piece.view(t.shape) for piece, t in zip(pieces, tensors))


class HasProductWeights(Protocol):
    def product_weights(self) -> list[Tensor]: ...


def product_weights_in_one_copy(
    layers: Sequence[HasProductWeights], dtype: torch.dtype | None
) -> dict[HasProductWeights, list[Tensor]]:
    """Under autocast (``dtype``, its lower precision; None: off), each layer's
    ``product_weights()`` - the weights and biases its products and convolutions read -
    cast to ``dtype`` in one copy for all ``layers`` (:func:`cast_in_one_copy`), as
    ``{layer: [its weights cast, in order]}`` for the layers' forward to take instead of
    their own; empty where there is nothing to cast (autocast off, or the weights
    already in ``dtype``). Autocast would cast each at its product, and each gradient
    back: two kernels per tensor and step, against two for the whole copy."""
    own = [layer.product_weights() for layer in layers]
    if dtype is None or not own or own[0][0].dtype == dtype:
        return {}
    cast = iter(cast_in_one_copy([t for weights in own for t in weights], dtype))
    return {layer: [next(cast) for _ in weights] for layer, weights in zip(layers, own)}


class CastLinear(nn.Linear):
    """An ``nn.Linear`` (the same parameters and state) whose forward can also take its
    weight and bias as the caller cast them (e.g. in one copy with others,
    :func:`cast_in_one_copy`), still as a module call: hooks and profilers see it."""

    def forward(
        self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None
    ) -> Tensor:
        if weight is None:
            weight, bias = self.weight, self.bias
        return F.linear(x, weight, bias)
