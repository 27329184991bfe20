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

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

K = TypeVar('K')


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


def cast_groups_in_one_copy(
    groups: Mapping[K, Sequence[Tensor]], dtype: torch.dtype | None
) -> dict[K, list[Tensor]]:
    """Each group of tensors cast to ``dtype`` (autocast's lower precision, or a frozen
    host's type), all groups in one copy (:func:`cast_in_one_copy`), as ``{key: [its
    tensors cast, in order]}``; empty where there is nothing to cast (``dtype`` None, no
    groups, or the tensors already in ``dtype``). Cast where each is read, every tensor
    would cost a kernel forward and one back per step; the copy costs two in all."""
    tensors = [list(group) for group in groups.values()]
    if dtype is None or not tensors or tensors[0][0].dtype == dtype:
        return {}
    cast = iter(cast_in_one_copy([t for group in tensors for t in group], dtype))
    return {key: [next(cast) for _ in group] for key, group in zip(groups, tensors)}


class HasProductWeights(Protocol):
    def product_weights(self) -> list[Tensor]: ...


def product_weights_in_one_copy(
    layers: Sequence[HasProductWeights], dtype: torch.dtype | None
) -> dict[HasProductWeights, list[Tensor]]:
    """Under autocast (``dtype``, its lower precision; None: off), each layer's
    ``product_weights()`` - the weights and biases its products and convolutions read -
    cast in one copy for all ``layers`` (:func:`cast_groups_in_one_copy`), as ``{layer:
    [its weights cast, in order]}`` for the layers' forward to take instead of their
    own; empty where there is nothing to cast."""
    if dtype is None:  # autocast off: nothing is read, every step
        return {}
    return cast_groups_in_one_copy({layer: layer.product_weights() for layer in layers}, dtype)


def conv2d_with(conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv`` (its stride, padding, dilation, groups) with the given weight and bias,
    e.g. as the caller cast them."""
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


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
