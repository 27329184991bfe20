"""Filter banks of orthogonal wavelets, read from PyWavelets once, when a transform is
built (never in a forward pass).

The bank of a wavelet is four 2-D kernels, the outer products (height filter x width
filter) ``lo x lo``, ``hi x lo``, ``lo x hi``, ``hi x hi`` of its reconstruction filters
used as correlation kernels: the bands ``LL, LH, HL, HH`` of :mod:`.wavelet`.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pywt
import torch
from torch import Tensor

#: Largest deviation from orthonormality tolerated in a filter bank. Every
#: orthogonal PyWavelets wavelet passes (the worst, sym20, is ~1e-11 off) except
#: the discrete Meyer wavelet ``dmey``, which is only approximately orthogonal.
_ORTHONORMAL_TOL = 1e-9


@cache
def orthogonal_filters(wavelet: str) -> tuple[np.ndarray, np.ndarray]:
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
def exact_bank(wavelet: str) -> Tensor:
    """Build the float64 2-D filter bank of shape ``(4, 1, L, L)`` on the CPU.

    The four kernels are the outer products (height filter x width filter)
    ``lo x lo``, ``hi x lo``, ``lo x hi`` and ``hi x hi``, i.e. the bands
    ``LL, LH, HL, HH`` in this order. The cached tensor is read-only by
    convention; callers copy it with ``.to(...)`` / ``.clone()``.
    """
    lo, hi = orthogonal_filters(wavelet)
    bank = np.stack([np.outer(lo, lo), np.outer(hi, lo), np.outer(lo, hi), np.outer(hi, hi)])
    # (4, L, L) -> (4, 1, L, L): one input channel per group of the conv.
    return torch.from_numpy(bank).unsqueeze(1)


#: The sign pattern of the Haar bank, ``[band][2 i + j]`` for pixel ``(i, j)`` of a block.
HAAR_SIGNS = ((1, 1, 1, 1), (1, 1, -1, -1), (1, -1, 1, -1), (1, -1, -1, 1))


@cache
def haar_scale(wavelet: str) -> float | None:
    """``k`` when the wavelet's ``(4, 1, L, L)`` bank is ``k`` times the 2x2 Haar sign
    pattern (``'haar'``, ``'db1'``), else None."""
    bank = exact_bank(wavelet)
    if bank.shape[-1] != 2:
        return None
    taps = bank.reshape(4, 4).tolist()
    scale = taps[0][0]
    for row, signs in zip(taps, HAAR_SIGNS):
        if any(t != scale * sign for t, sign in zip(row, signs)):
            return None
    return scale
