"""Single-level 2-D discrete wavelet transform (DWT) and its inverse.

The Wavelet Side Tuning method WST (Zeng, Huang and Wang, AAAI 2025) feeds a
side network with the wavelet sub-bands of the image; :class:`DWT2d` and
:class:`IDWT2d` compute these sub-bands on any device.

Convention used throughout this module (a contract other modules rely on):

* ``DWT2d``: ``(B, C, H, W) -> (B, 4 * C, H // 2, W // 2)``. The output channels
  are four blocks ``[LL | LH | HL | HH]``, each ``C`` channels wide, so
  ``out[:, :C]`` holds the LL band of every input channel, ``out[:, C:2 * C]`` the
  LH band and so on (the bands are *not* interleaved per channel).
* The first letter is the filter applied along the height, the second the one
  applied along the width (``L`` = low-pass, ``H`` = high-pass). For Haar and a
  2x2 patch ``[[a, b], [c, d]]``::

      LL = (a + b + c + d) / 2
      LH = (a + b - c - d) / 2    # high-pass along the height
      HL = (a - b + c - d) / 2    # high-pass along the width
      HH = (a - b - c + d) / 2

* Only orthogonal wavelets are accepted. With periodic (circular) boundary
  extension, the transform of an image with even height and width is an
  orthonormal change of basis: it keeps the energy (sum of squares) and
  :class:`IDWT2d` (its transpose) inverts it exactly, and ``DWT2d(IDWT2d(y)) == y``.
* ``channels_last=True``: the sub-bands as ``(B, H // 2, W // 2, 4 * C)`` (the layout
  of a ViT's patch tokens), channels in the same ``[LL | LH | HL | HH]`` order.

The modules are written for few kernels and for ``torch.compile``: the filters are
buffers made at construction (PyWavelets is read only there, :mod:`.wavelet_filters`)
and a forward pass makes no library call and no host-device synchronisation. Haar
(``'haar'``, ``'db1'``) needs no convolution: the four pixels of every 2x2 block are
mixed into the four bands by one 4x4 matrix product. Longer filters run as one grouped,
stride-2 (transposed) convolution over the periodically extended input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .wavelet_filters import exact_bank, haar_scale

__all__ = ['DWT2d', 'IDWT2d', 'dwt2d', 'idwt2d']


@cache
def _cpu_half_conv_supported() -> bool:
    """Whether this PyTorch build runs float16 (transposed) convolutions on CPU."""
    probe = torch.zeros(1, 1, 2, 2, dtype=torch.float16)
    try:
        F.conv2d(probe, probe, stride=2)
        F.conv_transpose2d(probe, probe, stride=2)
    except RuntimeError:
        return False
    return True


def _check_wavelet_input(x: Tensor, channels_last: bool = False) -> None:
    if x.dim() != 4:
        layout = '(B, H, W, C)' if channels_last else '(B, C, H, W)'
        raise ValueError(f'DWT2d expects a 4-D tensor {layout}, got shape {tuple(x.shape)}')
    if not x.is_floating_point():
        raise TypeError(f'Wavelet transforms need a floating point tensor, got {x.dtype}')
    height, width = x.shape[-2:]
    if height % 2 or width % 2 or height == 0 or width == 0:
        raise ValueError(
            f'DWT2d needs an even, non-zero height and width, got H={height}, '
            f'W={width} (input shape {tuple(x.shape)}); pad the input first, '
            f'e.g. F.pad(x, (0, W % 2, 0, H % 2), mode="reflect").'
        )


def _check_inverse_input(y: Tensor, channels_last: bool = False) -> None:
    layout = '(B, h, w, 4 * C)' if channels_last else '(B, 4 * C, h, w)'
    if y.dim() != 4:
        raise ValueError(f'IDWT2d expects a 4-D tensor {layout}, got shape {tuple(y.shape)}')
    if not y.is_floating_point():
        raise TypeError(f'Wavelet transforms need a floating point tensor, got {y.dtype}')
    bands = y.shape[-1] if channels_last else y.shape[1]
    if bands % 4 != 0 or bands == 0:
        raise ValueError(
            f'IDWT2d expects 4 * C channels laid out as [LL | LH | HL | HH], '
            f'got {bands} channels (shape {tuple(y.shape)}, layout {layout}), which is not '
            f'a positive multiple of 4.'
        )


def _periodic_extend(x: Tensor, pad: int) -> Tensor:
    """Extend ``x`` ``(B, C, H, W)`` periodically by ``pad`` rows and columns on every
    side (``L / 2 - 1`` for a filter of length ``L``; may exceed ``H`` or ``W``):
    ``(B, C, H + 2 * pad, W + 2 * pad)``, extended row ``i`` being row ``(i - pad) mod H``."""
    if pad == 0:
        return x
    height, width = x.shape[-2:]
    if pad <= height and pad <= width:
        return F.pad(x, (pad, pad, pad, pad), mode='circular')
    # Filter longer than the image: tile it enough times, then crop so that the
    # first kept row/column is (-pad) mod size.
    top, left = (-pad) % height, (-pad) % width
    reps_h = math.ceil((top + height + 2 * pad) / height)
    reps_w = math.ceil((left + width + 2 * pad) / width)
    # (B, C, H, W) -> (B, C, reps_h * H, reps_w * W) -> (B, C, H + 2 * pad, W + 2 * pad)
    tiled = x.repeat(1, 1, reps_h, reps_w)
    return tiled[..., top : top + height + 2 * pad, left : left + width + 2 * pad]


def _periodic_fold(z: Tensor, height: int, width: int, pad: int) -> Tensor:
    """Adjoint of :func:`_periodic_extend`: ``(B, C, height + 2 pad, width + 2 pad)`` ->
    ``(B, C, height, width)``, every wrapped sample added back to its origin."""
    if pad == 0:
        return z
    ext_h, ext_w = z.shape[-2:]
    # Prepend zeros so that row i of the padded tensor belongs to row i mod H of
    # the image, then append zeros up to whole periods.
    top, left = (-pad) % height, (-pad) % width
    reps_h = math.ceil((top + ext_h) / height)
    reps_w = math.ceil((left + ext_w) / width)
    # (B, C, H + 2 * pad, W + 2 * pad) -> (B, C, reps_h * H, reps_w * W)
    z = F.pad(z, (left, reps_w * width - left - ext_w, top, reps_h * height - top - ext_h))
    # (B, C, reps_h * H, reps_w * W) -> (B, C, reps_h, H, reps_w, W) -> (B, C, H, W)
    z = z.reshape(z.shape[0], z.shape[1], reps_h, height, reps_w, width)
    return z.sum(dim=(2, 4))


def haar_to_bands(x: Tensor, mix: Tensor) -> Tensor:
    """Haar DWT to channels-last bands: ``(B, C, 2h, 2w)`` -> ``(B, h, w, 4 C)``.

    ``mix`` is the ``(4, 4)`` Haar matrix ``[band, 2 i + j]`` (scale times the signs) for
    pixel ``(i, j)`` of each 2x2 block: one copy that gathers each block's pixels and one
    matrix product, which keeps nothing but the gathered pixels for its backward pass."""
    batch, channels, height, width = x.shape
    h, w = height // 2, width // 2
    # (B, C, h, 2, w, 2) -> (B, h, w, 2, 2, C) -> (B, h, w, 4, C): pixel 2 i + j of a block
    pixels = x.reshape(batch, channels, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1)
    pixels = pixels.reshape(batch, h, w, 4, channels)
    # (4, 4) @ (B, h, w, 4, C) -> (B, h, w, 4, C): band-major -> (B, h, w, 4 C)
    return torch.matmul(mix.to(pixels.dtype), pixels).reshape(batch, h, w, 4 * channels)


def haar_from_bands(y: Tensor, mix: Tensor) -> Tensor:
    """Inverse of :func:`haar_to_bands`: ``(B, h, w, 4 C)`` -> ``(B, C, 2h, 2w)`` (the
    transposed matrix maps the bands back to the pixels of each block)."""
    batch, h, w, bands = y.shape
    channels = bands // 4
    # (B, h, w, 4 C) -> (B, h, w, 4, C); (4, 4)^T @ bands -> pixels (B, h, w, 4, C)
    pixels = torch.matmul(mix.t().to(y.dtype), y.reshape(batch, h, w, 4, channels))
    # (B, h, w, 2, 2, C) -> (B, C, h, 2, w, 2) -> (B, C, 2h, 2w)
    pixels = pixels.reshape(batch, h, w, 2, 2, channels).permute(0, 5, 1, 3, 2, 4)
    return pixels.reshape(batch, channels, 2 * h, 2 * w)


def _conv_dwt(x: Tensor, bank: Tensor) -> Tensor:
    """Forward transform with a ``(4, 1, L, L)`` bank as one grouped, stride-2 convolution
    of the periodically extended input: ``(B, C, H, W)`` -> ``(B, 4 C, H/2, W/2)``."""
    batch, channels, height, width = x.shape
    pad = bank.shape[-1] // 2 - 1
    # One group per input channel, four output channels per group:
    # (4, 1, L, L) -> (4 * C, 1, L, L), rows ordered (c, band).
    weight = bank.repeat(channels, 1, 1, 1)
    # (B, C, H, W) -> (B, C, H + L - 2, W + L - 2) -> (B, 4 * C, H / 2, W / 2)
    y = F.conv2d(_periodic_extend(x, pad), weight, stride=2, groups=channels)
    # Channel order (c, band) -> (band, c):
    # (B, 4 * C, h, w) -> (B, C, 4, h, w) -> (B, 4, C, h, w) -> (B, 4 * C, h, w)
    y = y.reshape(batch, channels, 4, height // 2, width // 2).transpose(1, 2)
    return y.reshape(batch, 4 * channels, height // 2, width // 2)


def _conv_idwt(y: Tensor, bank: Tensor) -> Tensor:
    """Inverse of :func:`_conv_dwt`: the transposed strided convolution, then the periodic
    extension folded back: ``(B, 4 C, h, w)`` -> ``(B, C, 2h, 2w)``."""
    batch, bands, height, width = y.shape
    channels = bands // 4
    weight = bank.repeat(channels, 1, 1, 1)
    # Channel order (band, c) -> (c, band):
    # (B, 4 * C, h, w) -> (B, 4, C, h, w) -> (B, C, 4, h, w) -> (B, 4 * C, h, w)
    y = y.reshape(batch, 4, channels, height, width).transpose(1, 2)
    y = y.reshape(batch, bands, height, width)
    # (B, 4 * C, h, w) -> (B, C, 2h + L - 2, 2w + L - 2) -> (B, C, 2h, 2w)
    z = F.conv_transpose2d(y, weight, stride=2, groups=channels)
    return _periodic_fold(z, 2 * height, 2 * width, bank.shape[-1] // 2 - 1)


def _compute_dtype(x: Tensor, cpu_half_conv: bool) -> torch.dtype:
    """The dtype to convolve ``x`` in: its own, or float32 for float16 on a CPU whose
    PyTorch build has no float16 convolution."""
    if x.dtype == torch.float16 and x.device.type == 'cpu' and not cpu_half_conv:
        return torch.float32
    return x.dtype


class _WaveletBase(nn.Module):
    """Shared filter handling of :class:`DWT2d` and :class:`IDWT2d`: the bank as a float32
    buffer (and float64, for float64 inputs), the Haar matrix, decided once."""

    filters: Tensor
    filters64: Tensor

    def __init__(self, wavelet: str = 'haar') -> None:
        super().__init__()
        self.wavelet = wavelet
        bank = exact_bank(wavelet)  # validates the name
        self.filter_length = int(bank.shape[-1])
        #: Haar's scale when the bank is the 2x2 Haar pattern (no convolution), else None
        self.haar = haar_scale(wavelet)
        self._cpu_half_conv = _cpu_half_conv_supported()
        # Non-persistent: rebuilt from PyWavelets, so absent from the state dict.
        self.register_buffer('filters', bank.float(), persistent=False)
        self.register_buffer('filters64', bank.clone(), persistent=False)

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> _WaveletBase:
        # ``module.half()`` / ``.to(dtype)`` would round the fixed coefficients;
        # follow device moves only and keep exact float32 / float64 coefficients.
        module = super()._apply(fn, *args, **kwargs)
        bank = exact_bank(self.wavelet)
        self.filters = bank.to(device=self.filters.device, dtype=torch.float32)
        self.filters64 = bank.to(device=self.filters.device, dtype=torch.float64)
        return module

    def _bank(self, dtype: torch.dtype) -> Tensor:
        """The ``(4, 1, L, L)`` bank in ``dtype`` (float64 inputs: exact coefficients)."""
        if dtype == torch.float64:
            return self.filters64
        return self.filters if dtype == torch.float32 else self.filters.to(dtype)

    def _mix(self, dtype: torch.dtype) -> Tensor:
        """Haar's ``(4, 4)`` matrix ``[band, pixel]`` (a view of the bank)."""
        return self._bank(dtype).reshape(4, 4)

    def extra_repr(self) -> str:
        return f'wavelet={self.wavelet!r}, filter_length={self.filter_length}'


class DWT2d(_WaveletBase):
    """Single-level 2-D discrete wavelet transform with an orthogonal wavelet.

    Each channel is filtered separately by the four separable kernels
    (height filter x width filter) ``lo x lo``, ``hi x lo``, ``lo x hi`` and
    ``hi x hi`` built from the PyWavelets filter bank ``pywt.Wavelet(wavelet)``
    (``rec_lo`` / ``rec_hi`` used as correlation kernels), implemented as one
    grouped, stride-2 :func:`torch.nn.functional.conv2d` (Haar: one 4x4 matrix product
    over the pixels of every 2x2 block). The output channels are grouped by band,
    ``[LL | LH | HL | HH]``, each block ``C`` channels wide. For Haar and a 2x2 patch
    ``[[a, b], [c, d]]`` this gives ``LL = (a + b + c + d) / 2``,
    ``LH = (a + b - c - d) / 2``, ``HL = (a - b + c - d) / 2`` and
    ``HH = (a - b - c + d) / 2``.

    Boundary handling: the image is extended periodically (circularly) by
    ``L / 2 - 1`` rows and columns on each side for a filter of length ``L``
    (nothing for Haar), so the output has exactly ``H / 2 x W / 2`` coefficients
    per band and the transform is orthonormal for every even ``H`` and ``W``,
    even when the filter is longer than the image: energy is preserved and
    :class:`IDWT2d` inverts it exactly. Coefficients near a border mix in pixels
    from the opposite border. The result equals
    ``pywt.dwt2(x, wavelet, mode='periodization')`` with ``cA, cH, cV, cD`` as
    ``LL, LH, HL, HH``. Odd sizes raise a ``ValueError``; pad the input to an
    even size first (e.g. with ``F.pad(..., mode='reflect')``).

    The filters are a float32, non-persistent buffer (with a float64 twin for float64
    inputs): they follow the module across devices but are neither parameters nor part
    of the state dict, and dtype casts of the module leave them unchanged. At call time
    they are cast to the input dtype, so float32, float64, bfloat16 and float16 inputs
    all work and the output keeps the input dtype. Everything about the wavelet is
    decided when the module is built: a forward pass calls no library and
    ``torch.compile`` captures it whole. Used by WST (Zeng, Huang and Wang, AAAI 2025)
    to decompose the image for its side network.

    Args:
        wavelet (str): Name of an orthogonal PyWavelets wavelet, such as
            ``'haar'``, ``'db2'``, ``'sym4'`` or ``'coif1'``. Defaults to
            ``'haar'``. Biorthogonal (``'bior*'``, ``'rbio*'``), approximately
            orthogonal (``'dmey'``) and unknown names raise ``ValueError``.

    Shape:
        - Input: ``(B, C, H, W)`` with even ``H`` and ``W``.
        - Output: ``(B, 4 * C, H // 2, W // 2)``, or with ``channels_last=True``
          ``(B, H // 2, W // 2, 4 * C)``.

    Examples:
        >>> import torch
        >>> from mmwst.models.layers import DWT2d, IDWT2d
        >>> dwt, idwt = DWT2d('db2'), IDWT2d('db2')
        >>> x = torch.randn(2, 3, 8, 10)
        >>> y = dwt(x)
        >>> y.shape
        torch.Size([2, 12, 4, 5])
        >>> ll = y[:, :3]  # low-pass band of the three channels
        >>> torch.allclose(idwt(y), x, atol=1e-5)
        True
        >>> dwt(x, channels_last=True).shape  # the bands as a ViT's patch map
        torch.Size([2, 4, 5, 12])
    """

    def forward(self, x: Tensor, channels_last: bool = False) -> Tensor:
        """Decompose ``x`` of shape ``(B, C, H, W)`` into ``(B, 4 * C, H // 2, W // 2)``
        (``channels_last``: ``(B, H // 2, W // 2, 4 * C)``)."""
        _check_wavelet_input(x)
        if self.haar is not None:
            bands = haar_to_bands(x, self._mix(x.dtype))  # (B, h, w, 4C)
            return bands if channels_last else bands.permute(0, 3, 1, 2)
        dtype = _compute_dtype(x, self._cpu_half_conv)
        y = _conv_dwt(x.to(dtype), self._bank(dtype)).to(x.dtype)  # (B, 4C, h, w)
        return y.permute(0, 2, 3, 1) if channels_last else y


class IDWT2d(_WaveletBase):
    """Inverse of :class:`DWT2d`: single-level 2-D inverse wavelet transform.

    Takes the band-major layout produced by :class:`DWT2d`
    (``[LL | LH | HL | HH]``, each block ``C`` channels wide) and rebuilds the
    image with one grouped, stride-2 :func:`torch.nn.functional.conv_transpose2d`
    with the same filters, followed by folding the periodic extension back onto
    the image (Haar: the transposed 4x4 matrix over every block's bands). Because the
    wavelet is orthogonal this is the transpose of :class:`DWT2d`, hence its exact
    inverse: ``IDWT2d(DWT2d(x)) == x`` and ``DWT2d(IDWT2d(y)) == y`` up to floating
    point rounding, for any ``h`` and ``w``. Filters and dtypes are handled as in
    :class:`DWT2d`.

    Args:
        wavelet (str): Name of an orthogonal PyWavelets wavelet. Defaults to
            ``'haar'``; it must match the one used by the forward transform.

    Shape:
        - Input: ``(B, 4 * C, h, w)``, or with ``channels_last=True`` ``(B, h, w, 4 * C)``.
        - Output: ``(B, C, 2 * h, 2 * w)``.

    Examples:
        >>> import torch
        >>> from mmwst.models.layers import DWT2d, IDWT2d
        >>> y = torch.randn(1, 8, 3, 5)  # C = 2
        >>> x = IDWT2d('sym4')(y)
        >>> x.shape
        torch.Size([1, 2, 6, 10])
        >>> torch.allclose(DWT2d('sym4')(x), y, atol=1e-5)
        True
    """

    def forward(self, y: Tensor, channels_last: bool = False) -> Tensor:
        """Rebuild ``(B, C, 2 * h, 2 * w)`` from sub-bands ``(B, 4 * C, h, w)``
        (``channels_last``: ``(B, h, w, 4 * C)``)."""
        _check_inverse_input(y, channels_last)
        if self.haar is not None:
            bands = y if channels_last else y.permute(0, 2, 3, 1)  # (B, h, w, 4C)
            return haar_from_bands(bands, self._mix(y.dtype))
        dtype = _compute_dtype(y, self._cpu_half_conv)
        if channels_last:  # (B, h, w, 4C) -> (B, 4C, h, w)
            y = y.permute(0, 3, 1, 2)
        return _conv_idwt(y.to(dtype), self._bank(dtype)).to(y.dtype)


@cache
def _modules(wavelet: str) -> tuple[DWT2d, IDWT2d]:
    return DWT2d(wavelet), IDWT2d(wavelet)


def dwt2d(x: Tensor, wavelet: str = 'haar') -> Tensor:
    """Functional single-level 2-D DWT; see :class:`DWT2d` for the convention (the
    module is the form to compile: it reads its filters once, when built).

    Args:
        x (Tensor): Input of shape ``(B, C, H, W)`` with even ``H`` and ``W``.
        wavelet (str): Orthogonal PyWavelets wavelet name. Defaults to ``'haar'``.

    Returns:
        Tensor: Sub-bands of shape ``(B, 4 * C, H // 2, W // 2)``, ordered
        ``[LL | LH | HL | HH]`` in blocks of ``C`` channels, same dtype as ``x``.

    Examples:
        >>> x = torch.arange(4.).reshape(1, 1, 2, 2)  # [[a, b], [c, d]] = [[0, 1], [2, 3]]
        >>> dwt2d(x).flatten().tolist()  # LL, LH, HL, HH
        [3.0, -2.0, -1.0, 0.0]
    """
    return _modules(wavelet)[0].to(x.device)(x)


def idwt2d(y: Tensor, wavelet: str = 'haar') -> Tensor:
    """Functional inverse of :func:`dwt2d`; see :class:`IDWT2d`.

    Args:
        y (Tensor): Sub-bands of shape ``(B, 4 * C, h, w)``, ordered
            ``[LL | LH | HL | HH]`` in blocks of ``C`` channels.
        wavelet (str): Orthogonal PyWavelets wavelet name. Defaults to ``'haar'``.

    Returns:
        Tensor: Reconstruction of shape ``(B, C, 2 * h, 2 * w)``, same dtype as ``y``.

    Examples:
        >>> x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
        >>> torch.allclose(idwt2d(dwt2d(x, 'db2'), 'db2'), x)
        True
    """
    return _modules(wavelet)[1].to(y.device)(y)
