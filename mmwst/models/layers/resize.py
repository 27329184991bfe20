"""Bilinear resizing as matrix products.

``F.interpolate(..., mode='bilinear', align_corners=False)`` gathers, for each output
pixel, its two neighbours along each axis with fixed weights. The same sum is a product
with a fixed matrix: along one axis ``A`` (out, in), whose row ``i`` holds ``1 - t`` and
``t`` at the two source pixels of output ``i`` (source coordinate ``(i + 0.5) * in / out
- 0.5``, clamped at 0, as PyTorch computes it); over the whole map ``A_h`` and ``A_w``
one after the other, or their Kronecker product ``A_h (x) A_w`` (out pixels, in pixels)
in one product when that matrix is small.

Why the side networks resize this way:

- **One graph for the compiler.** Under ``torch.compile`` the backward of
  ``upsample_bilinear2d`` becomes a scatter-add into a zeroed buffer, and on the CPU
  torch 2.11's inductor orders such a buffer after a fused kernel that reads it
  (``UnboundLocalError`` in the generated code, HST and the dense backbone alike); a
  matrix product's backward is another product.
- **The GPU's fast path.** A product runs on the tensor cores in autocast's precision;
  PyTorch's bilinear kernel runs a generic loop, and its backward on CUDA adds with
  atomics - in an order that changes from run to run. The product's gradient is
  deterministic.
- **Few kernels.** Forward and backward are one product each (Kronecker) or two each
  (axis by axis); the matrices are built once per shape, device and precision and kept
  (built inside the graph when compiling).

Values equal ``F.interpolate``'s to float rounding (relative 1e-6 in float32, 1e-12 in
float64): each output is the same weighted sum of the same pixels, added in another
order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch
from torch import Tensor

from .casting import autocast_dtype

#: Largest Kronecker matrix (out pixels x in pixels) used as one product; above it the
#: two axes go one after the other. HST's stride-4 map of a 224 image (14 x 14 -> 56 x 56)
#: takes one product; a 512 image's (32 x 32 -> 128 x 128) two.
KRONECKER_MAX_ENTRIES = 1 << 20

_CACHE: OrderedDict[tuple, tuple[Tensor, ...]] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()  # replicas of nn.DataParallel resize in threads


def axis_weights(
    in_size: int,
    out_size: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The bilinear weights of one axis, ``align_corners=False``: ``(out_size,
    in_size)``, each row two taps (one where both fall on the last pixel) that sum to
    1, computed in ``dtype`` (float64 for float64 maps, as PyTorch's kernel does)."""
    scale = in_size / out_size
    out = torch.arange(out_size, device=device, dtype=dtype)
    source = ((out + 0.5) * scale - 0.5).clamp(min=0)
    first = source.floor().clamp(max=in_size - 1)
    frac = (source - first).unsqueeze(1)
    first = first.long().unsqueeze(1)
    second = (first + 1).clamp(max=in_size - 1)
    columns = torch.arange(in_size, device=device)
    return (columns == first) * (1 - frac) + (columns == second) * frac


def _build(
    in_hw: tuple[int, int], out_hw: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, ...]:
    exact = torch.float64 if dtype == torch.float64 else torch.float32
    rows = axis_weights(in_hw[0], out_hw[0], device, exact)
    cols = axis_weights(in_hw[1], out_hw[1], device, exact)
    entries = in_hw[0] * in_hw[1] * out_hw[0] * out_hw[1]
    if entries <= KRONECKER_MAX_ENTRIES:
        # (H, h) (x) (W, w) -> (H * W, h * w), pixels in row-major order on both sides
        kron = rows[:, None, :, None] * cols[None, :, None, :]
        return (kron.reshape(out_hw[0] * out_hw[1], in_hw[0] * in_hw[1]).to(dtype),)
    return rows.to(dtype), cols.to(dtype)


def bilinear_weights(
    in_hw: tuple[int, int], out_hw: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, ...]:
    """The matrices that resize an ``in_hw`` grid to ``out_hw``: ``(K,)``, the
    Kronecker matrix ``(H * W, h * w)``, when it has at most
    :data:`KRONECKER_MAX_ENTRIES` entries, else ``(A_h, A_w)``. Kept per shape, device
    and dtype (the last 64 used); built anew inside a compiled graph, which keeps no
    Python state."""
    if torch.compiler.is_compiling():
        return _build(in_hw, out_hw, device, dtype)
    key = (tuple(in_hw), tuple(out_hw), torch.device(device), dtype)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = _build(*key)
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
    return found


def _dtype(x: Tensor) -> torch.dtype:
    """The precision the products run in: autocast's where it is on (so that the
    matrices need no cast), else ``x``'s."""
    return autocast_dtype(x.device.type) or x.dtype


def resize_tokens(x: Tensor, size: tuple[int, int]) -> Tensor:
    """A channels-last map ``(B, h, w, C)`` bilinearly resized to ``size``, as tokens
    ``(B, H * W, C)`` (``align_corners=False``; the map as it is when it already has
    that size)."""
    batch, height, width, channels = x.shape
    out_h, out_w = size
    if (height, width) == (out_h, out_w):
        return x.reshape(batch, height * width, channels)
    weights = bilinear_weights((height, width), (out_h, out_w), x.device, _dtype(x))
    if len(weights) == 1:  # (H * W, h * w) x (B, h * w, C)
        return torch.matmul(weights[0], x.reshape(batch, height * width, channels))
    rows, cols = weights
    # along w: (W, w) x (B * h, w, C) -> (B * h, W, C); along h: (H, h) x (B, h, W * C)
    x = torch.matmul(cols, x.reshape(batch * height, width, channels))
    x = torch.matmul(rows, x.reshape(batch, height, out_w * channels))
    return x.reshape(batch, out_h * out_w, channels)


def resize_map(x: Tensor, size: tuple[int, int]) -> Tensor:
    """A map ``(N, C, h, w)`` bilinearly resized to ``size``: ``(N, C, H, W)``, as
    ``F.interpolate(x, size, mode='bilinear', align_corners=False)`` (``x`` itself when
    it already has that size)."""
    height, width = x.shape[-2:]
    out_h, out_w = size
    if (height, width) == (out_h, out_w):
        return x
    weights = bilinear_weights((height, width), (out_h, out_w), x.device, _dtype(x))
    if len(weights) == 1:  # (N, C, h * w) x (h * w, H * W)
        return torch.matmul(x.flatten(-2), weights[0].t()).unflatten(-1, (out_h, out_w))
    rows, cols = weights
    # along w: (N, C, h, w) x (w, W); along h: (H, h) x (N, C, h, W)
    return torch.matmul(rows, torch.matmul(x, cols.t()))
