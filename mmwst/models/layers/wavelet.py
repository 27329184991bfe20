"""Single-level 2-D discrete wavelet transform (DWT) and its inverse.

The Wavelet Side Tuning method WST (Zeng, Huang and Wang, AAAI 2025) feeds a
side network with the wavelet sub-bands of the image; :class:`DWT2d` and
:class:`IDWT2d` compute these sub-bands on any device as fixed-filter strided
convolutions, batched over channels.

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
  :class:`IDWT2d` (its transpose) inverts it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pywt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['DWT2d', 'IDWT2d', 'dwt2d', 'idwt2d']

#: Largest deviation from orthonormality tolerated in a filter bank. Every
#: orthogonal PyWavelets wavelet passes (the worst, sym20, is ~1e-11 off) except
#: the discrete Meyer wavelet ``dmey``, which is only approximately orthogonal.
_ORTHONORMAL_TOL = 1e-9


@cache
def _orthogonal_filters(wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the low- and high-pass filters of an orthogonal wavelet.

    Args:
        wavelet (str): A discrete PyWavelets wavelet name, e.g. ``'haar'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: The float64 reconstruction filters
        ``(rec_lo, rec_hi)``. Used as correlation kernels they give the
        orthonormal analysis transform.

    Raises:
        TypeError: If ``wavelet`` is not a string.
        ValueError: If the name is unknown, continuous, or not orthogonal.
    """
    if not isinstance(wavelet, str):
        raise TypeError(
            f'wavelet must be a PyWavelets wavelet name (str), '
            f'got {type(wavelet).__name__}: {wavelet!r}'
        )
    try:
        wave = pywt.Wavelet(wavelet)
    except ValueError as err:
        raise ValueError(
            f'Unknown discrete wavelet {wavelet!r}; expected an orthogonal '
            f'PyWavelets wavelet such as "haar", "db2" or "sym4" '
            f'(see pywt.wavelist(kind="discrete")). PyWavelets said: {err}'
        ) from err
    if not wave.orthogonal:
        raise ValueError(
            f'Wavelet {wavelet!r} is not orthogonal (family '
            f'{wave.family_name!r}); DWT2d/IDWT2d need an orthogonal wavelet '
            f'(haar, db*, sym*, coif*) so that the inverse is the transpose. '
            f'Biorthogonal wavelets (bior*, rbio*) are not supported.'
        )
    lo = np.asarray(wave.rec_lo, dtype=np.float64)
    hi = np.asarray(wave.rec_hi, dtype=np.float64)
    length = lo.size
    # Orthonormality of the two-channel bank: unit norm, zero autocorrelation at
    # non-zero even lags and zero lo/hi cross-correlation at even lags. Index
    # ``length - 1`` of a full correlation is lag 0, which is odd for even lengths.
    auto_lo = np.correlate(lo, lo, 'full')[length - 1 :: 2]
    auto_hi = np.correlate(hi, hi, 'full')[length - 1 :: 2]
    cross = np.correlate(lo, hi, 'full')[(length - 1) % 2 :: 2]
    error = max(
        abs(auto_lo[0] - 1.0),
        abs(auto_hi[0] - 1.0),
        np.abs(auto_lo[1:]).max(initial=0.0),
        np.abs(auto_hi[1:]).max(initial=0.0),
        np.abs(cross).max(),
    )
    if length % 2 != 0 or hi.size != length or error > _ORTHONORMAL_TOL:
        raise ValueError(
            f'Wavelet {wavelet!r} is only approximately orthogonal (its filter '
            f'bank deviates from orthonormality by {error:.2e}, tolerance '
            f'{_ORTHONORMAL_TOL:.0e}), so the transform would not be exactly '
            f'invertible; use haar, db*, sym* or coif* instead.'
        )
    return lo, hi


@cache
def _exact_bank(wavelet: str) -> Tensor:
    """Build the float64 2-D filter bank of shape ``(4, 1, L, L)`` on the CPU.

    The four kernels are the outer products (height filter x width filter)
    ``lo x lo``, ``hi x lo``, ``lo x hi`` and ``hi x hi``, i.e. the bands
    ``LL, LH, HL, HH`` in this order. The cached tensor is read-only by
    convention; callers copy it with ``.to(...)`` / ``.clone()``.
    """
    lo, hi = _orthogonal_filters(wavelet)
    bank = np.stack([np.outer(lo, lo), np.outer(hi, lo), np.outer(lo, hi), np.outer(hi, hi)])
    # (4, L, L) -> (4, 1, L, L): one input channel per group of the conv.
    return torch.from_numpy(bank).unsqueeze(1)


@lru_cache(maxsize=64)
def _cached_bank(wavelet: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The filter bank of ``wavelet`` converted to ``dtype`` on ``device``."""
    return _exact_bank(wavelet).to(device=device, dtype=dtype)


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


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype to convolve ``x`` in: its own, or float32 for unsupported fp16."""
    if not x.is_floating_point():
        raise TypeError(f'Wavelet transforms need a floating point tensor, got {x.dtype}')
    if x.dtype == torch.float16 and x.device.type == 'cpu' and not _cpu_half_conv_supported():
        return torch.float32
    return x.dtype


def _check_wavelet_input(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f'DWT2d expects a 4-D tensor (B, C, H, W), got shape {tuple(x.shape)}')
    height, width = x.shape[-2:]
    if height % 2 or width % 2 or height == 0 or width == 0:
        raise ValueError(
            f'DWT2d needs an even, non-zero height and width, got H={height}, '
            f'W={width} (input shape {tuple(x.shape)}); pad the input first, '
            f'e.g. F.pad(x, (0, W % 2, 0, H % 2), mode="reflect").'
        )


def _check_inverse_input(y: Tensor) -> None:
    if y.dim() != 4:
        raise ValueError(
            f'IDWT2d expects a 4-D tensor (B, 4 * C, h, w), got shape {tuple(y.shape)}'
        )
    if y.shape[1] % 4 != 0 or y.shape[1] == 0:
        raise ValueError(
            f'IDWT2d expects 4 * C channels laid out as [LL | LH | HL | HH], '
            f'got {y.shape[1]} channels (shape {tuple(y.shape)}), which is not '
            f'a positive multiple of 4.'
        )


def _periodic_extend(x: Tensor, pad: int) -> Tensor:
    """Extend ``x`` periodically by ``pad`` rows and columns on every side.

    Args:
        x (Tensor): Shape ``(B, C, H, W)``.
        pad (int): Number of wrapped samples per side, ``L / 2 - 1`` for a filter
            of length ``L``. May exceed ``H`` or ``W``.

    Returns:
        Tensor: Shape ``(B, C, H + 2 * pad, W + 2 * pad)``; extended row ``i`` is
        row ``(i - pad) mod H`` of ``x`` (likewise for columns).
    """
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
    """Adjoint of :func:`_periodic_extend`: add wrapped samples back to their origin.

    Args:
        z (Tensor): Shape ``(B, C, height + 2 * pad, width + 2 * pad)``.
        height (int): Height ``H`` of the periodic signal.
        width (int): Width ``W`` of the periodic signal.
        pad (int): The ``pad`` given to :func:`_periodic_extend`.

    Returns:
        Tensor: Shape ``(B, C, height, width)``.
    """
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


#: The sign pattern of the Haar bank, ``[band][2 i + j]`` for pixel ``(i, j)`` of a block.
_HAAR_SIGNS = ((1, 1, 1, 1), (1, 1, -1, -1), (1, -1, 1, -1), (1, -1, -1, 1))


@cache
def _haar_scale(wavelet: str) -> float | None:
    """``k`` when the wavelet's ``(4, 1, L, L)`` bank is ``k`` times the 2x2 Haar sign
    pattern (``'haar'``, ``'db1'``), else None. Read once per name from the exact CPU
    bank, so a forward pass never reads coefficients back from the device."""
    bank = _exact_bank(wavelet)
    if bank.shape[-1] != 2:
        return None
    taps = bank.reshape(4, 4).tolist()
    scale = taps[0][0]
    for row, signs in zip(taps, _HAAR_SIGNS):
        if any(t != scale * sign for t, sign in zip(row, signs)):
            return None
    return scale


def _butterfly(p: Tensor, q: Tensor, r: Tensor, t: Tensor, scale: float) -> list[Tensor]:
    """``scale`` times the Haar sign pattern applied to ``(p, q, r, t)`` with 8 additions:
    ``[p+q+r+t, p+q-r-t, p-q+r-t, p-q-r+t]``. The pattern is its own transpose, so the
    same butterfly maps pixels to bands and bands to pixels. Additions and products by
    a Python number keep nothing for the backward pass."""
    plus, minus = p + q, p - q
    plus2, minus2 = r + t, r - t
    return [
        (plus + plus2) * scale,
        (plus - plus2) * scale,
        (minus + minus2) * scale,
        (minus - minus2) * scale,
    ]


def _dwt2d(x: Tensor, bank: Tensor, haar: float | None = None) -> Tensor:
    """Forward transform of a validated input with a ``(4, 1, L, L)`` bank (``haar``: the
    bank's :func:`_haar_scale`).

    The Haar bank needs no padding and no convolution: each band is a signed sum of
    the four pixels of every 2x2 block (:func:`_butterfly`), which keeps nothing for
    the backward pass (a convolution would keep its input) and runs faster.
    """
    if haar is not None:
        batch, channels, height, width = x.shape
        # (B, C, H, W) -> (B, C, H/2, 2, W/2, 2): the pixels a, b, c, d of each block
        blocks = x.reshape(batch, channels, height // 2, 2, width // 2, 2)
        pixels = [blocks[:, :, :, i, :, j] for i in (0, 1) for j in (0, 1)]
        # four (B, C, h, w) bands -> (B, 4 * C, h, w), band-major
        return torch.cat(_butterfly(*pixels, haar), dim=1)
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


def _idwt2d(y: Tensor, bank: Tensor, haar: float | None = None) -> Tensor:
    """Inverse transform of a validated input with a ``(4, 1, L, L)`` bank (Haar: the
    transposed butterfly of :func:`_dwt2d`, elementwise)."""
    batch, bands, height, width = y.shape
    channels = bands // 4
    if haar is not None:
        subbands = y.reshape(batch, 4, channels, height, width).unbind(1)
        pixels = _butterfly(*subbands, haar)  # pixel (i, j) of every block: a, b, c, d
        # (B, C, h, w) x 4 -> (B, C, h, 2, w, 2) -> (B, C, 2h, 2w)
        top = torch.stack(pixels[:2], dim=-1)
        bottom = torch.stack(pixels[2:], dim=-1)
        return torch.stack([top, bottom], dim=3).reshape(batch, channels, 2 * height, 2 * width)
    weight = bank.repeat(channels, 1, 1, 1)
    # Channel order (band, c) -> (c, band):
    # (B, 4 * C, h, w) -> (B, 4, C, h, w) -> (B, C, 4, h, w) -> (B, 4 * C, h, w)
    y = y.reshape(batch, 4, channels, height, width).transpose(1, 2)
    y = y.reshape(batch, bands, height, width)
    # Transposed strided conv, the adjoint of the strided conv in _dwt2d:
    # (B, 4 * C, h, w) -> (B, C, 2h + L - 2, 2w + L - 2)
    z = F.conv_transpose2d(y, weight, stride=2, groups=channels)
    # Fold the periodic extension back: (B, C, 2h + L - 2, 2w + L - 2) -> (B, C, 2h, 2w)
    return _periodic_fold(z, 2 * height, 2 * width, bank.shape[-1] // 2 - 1)


def dwt2d(x: Tensor, wavelet: str = 'haar') -> Tensor:
    """Functional single-level 2-D DWT; see :class:`DWT2d` for the convention.

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
    _check_wavelet_input(x)
    dtype = _compute_dtype(x)
    bank = _cached_bank(wavelet, dtype, x.device)
    return _dwt2d(x.to(dtype), bank, _haar_scale(wavelet)).to(x.dtype)


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
    _check_inverse_input(y)
    dtype = _compute_dtype(y)
    bank = _cached_bank(wavelet, dtype, y.device)
    return _idwt2d(y.to(dtype), bank, _haar_scale(wavelet)).to(y.dtype)


class _WaveletBase(nn.Module):
    """Shared filter handling of :class:`DWT2d` and :class:`IDWT2d`."""

    filters: Tensor

    def __init__(self, wavelet: str = 'haar') -> None:
        super().__init__()
        self.wavelet = wavelet
        bank = _exact_bank(wavelet)  # validates the name
        self.filter_length = int(bank.shape[-1])
        # Non-persistent: rebuilt from PyWavelets, so absent from the state dict.
        self.register_buffer('filters', bank.float(), persistent=False)

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> _WaveletBase:
        # ``module.half()`` / ``.to(dtype)`` would round the fixed coefficients;
        # follow device moves only and keep exact float32 coefficients.
        module = super()._apply(fn, *args, **kwargs)
        self.filters = _exact_bank(self.wavelet).to(device=self.filters.device, dtype=torch.float32)
        return module

    def _bank_for(self, x: Tensor) -> tuple[Tensor, torch.dtype]:
        """The filter bank cast for ``x`` and the dtype to compute in."""
        dtype = _compute_dtype(x)
        if dtype == torch.float64:
            # float32 coefficients would limit float64 results to ~1e-7 accuracy.
            return _cached_bank(self.wavelet, dtype, x.device), dtype
        return self.filters.to(device=x.device, dtype=dtype), dtype

    def extra_repr(self) -> str:
        return f'wavelet={self.wavelet!r}, filter_length={self.filter_length}'


class DWT2d(_WaveletBase):
    """Single-level 2-D discrete wavelet transform with an orthogonal wavelet.

    Each channel is filtered separately by the four separable kernels
    (height filter x width filter) ``lo x lo``, ``hi x lo``, ``lo x hi`` and
    ``hi x hi`` built from the PyWavelets filter bank ``pywt.Wavelet(wavelet)``
    (``rec_lo`` / ``rec_hi`` used as correlation kernels), implemented as one
    grouped, stride-2 :func:`torch.nn.functional.conv2d` (Haar: as signed sums of each
    2x2 block's pixels, which keep nothing for the backward pass). The output channels are
    grouped by band, ``[LL | LH | HL | HH]``, each block ``C`` channels wide. For
    Haar and a 2x2 patch ``[[a, b], [c, d]]`` this gives ``LL = (a + b + c + d) / 2``,
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

    The filters are a float32, non-persistent buffer: they follow the module
    across devices but are neither parameters nor part of the state dict, and
    dtype casts of the module leave them unchanged. At call time they are cast
    to the input dtype (float64 inputs use float64 coefficients), so float32,
    float64, bfloat16 and float16 inputs all work and the output keeps the
    input dtype. Used by WST (Zeng, Huang and Wang, AAAI 2025) to decompose the
    image for its side network.

    Args:
        wavelet (str): Name of an orthogonal PyWavelets wavelet, such as
            ``'haar'``, ``'db2'``, ``'sym4'`` or ``'coif1'``. Defaults to
            ``'haar'``. Biorthogonal (``'bior*'``, ``'rbio*'``), approximately
            orthogonal (``'dmey'``) and unknown names raise ``ValueError``.

    Shape:
        - Input: ``(B, C, H, W)`` with even ``H`` and ``W``.
        - Output: ``(B, 4 * C, H // 2, W // 2)``.

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
    """

    def forward(self, x: Tensor) -> Tensor:
        """Decompose ``x`` of shape ``(B, C, H, W)`` into ``(B, 4 * C, H // 2, W // 2)``."""
        _check_wavelet_input(x)
        bank, dtype = self._bank_for(x)
        return _dwt2d(x.to(dtype), bank, _haar_scale(self.wavelet)).to(x.dtype)


class IDWT2d(_WaveletBase):
    """Inverse of :class:`DWT2d`: single-level 2-D inverse wavelet transform.

    Takes the band-major layout produced by :class:`DWT2d`
    (``[LL | LH | HL | HH]``, each block ``C`` channels wide) and rebuilds the
    image with one grouped, stride-2 :func:`torch.nn.functional.conv_transpose2d`
    with the same filters, followed by folding the periodic extension back onto
    the image. Because the wavelet is orthogonal this is the transpose of
    :class:`DWT2d`, hence its exact inverse: ``IDWT2d(DWT2d(x)) == x`` and
    ``DWT2d(IDWT2d(y)) == y`` up to floating point rounding, for any ``h`` and ``w``.
    Filters and dtypes are handled as in :class:`DWT2d`.

    Args:
        wavelet (str): Name of an orthogonal PyWavelets wavelet. Defaults to
            ``'haar'``; it must match the one used by the forward transform.

    Shape:
        - Input: ``(B, 4 * C, h, w)``.
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

    def forward(self, y: Tensor) -> Tensor:
        """Rebuild ``(B, C, 2 * h, 2 * w)`` from sub-bands ``(B, 4 * C, h, w)``."""
        _check_inverse_input(y)
        bank, dtype = self._bank_for(y)
        return _idwt2d(y.to(dtype), bank, _haar_scale(self.wavelet)).to(y.dtype)
