"""Helpers shared by the mini-VTAB renderers: supersampling, noise and colour."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Scenes are drawn at this many times the output side, then box-filtered down.
SUPERSAMPLE = 4


def canvas_side(size: int) -> int:
    """Side in pixels of the internal (supersampled) canvas for an output of ``size``."""
    return SUPERSAMPLE * size


def finish(canvas: np.ndarray | Image.Image, size: int) -> np.ndarray:
    """Box-filter a supersampled canvas down to an RGB ``size`` x ``size`` uint8 array.

    Args:
        canvas (np.ndarray | PIL.Image.Image): An RGB image, or a float array in [0, 1]
            of shape (H, W, 3) or (H, W).
        size (int): The output side in pixels.

    Returns:
        np.ndarray: A (size, size, 3) uint8 array.
    """
    if isinstance(canvas, np.ndarray):
        array = np.clip(canvas, 0.0, 1.0)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        canvas = Image.fromarray((array * 255.0 + 0.5).astype(np.uint8), mode='RGB')
    image = canvas.convert('RGB').resize((size, size), Image.BOX)
    return np.asarray(image, dtype=np.uint8)


def smooth_noise(rng: np.random.Generator, side: int, cells: float) -> np.ndarray:
    """Band-limited noise: Gaussian values on a ``cells`` grid, bicubically upsampled.

    Args:
        rng (np.random.Generator): The random stream.
        side (int): Output side in pixels.
        cells (float): Grid cells across the image (features about ``side / cells`` wide).

    Returns:
        np.ndarray: A (side, side) float32 array of zero mean and unit spread.
    """
    n = max(2, int(round(cells)) + 1)
    grid = rng.standard_normal((n, n)).astype(np.float32)
    noise = np.asarray(Image.fromarray(grid, mode='F').resize((side, side), Image.BICUBIC))
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def fractal_noise(
    rng: np.random.Generator, side: int, cells: float, octaves: int = 3, gain: float = 0.5
) -> np.ndarray:
    """Sum of :func:`smooth_noise` octaves, each twice as fine and ``gain`` times as strong.

    Returns:
        np.ndarray: A (side, side) float32 array of zero mean and unit spread.
    """
    total = np.zeros((side, side), np.float32)
    weight = 1.0
    for octave in range(octaves):
        total += weight * smooth_noise(rng, side, cells * 2**octave)
        weight *= gain
    return (total - total.mean()) / (total.std() + 1e-6)


def grid_coords(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in image units: ``x`` grows rightwards, ``y`` downwards."""
    t = (np.arange(side, dtype=np.float32) + 0.5) / side
    return np.meshgrid(t, t)


def rotated_coords(side: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates about the centre, rotated by ``angle`` (radians).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``u`` along the direction ``angle`` and ``v``
        across it, both in image units (the image spans about -0.5..0.5).
    """
    x, y = grid_coords(side)
    x, y = x - 0.5, y - 0.5
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1`` and a smooth ramp between them."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def jitter(rng: np.random.Generator, rgb, amount: float = 0.08) -> np.ndarray:
    """``rgb`` (in [0, 1]) with a random brightness and per-channel gain."""
    gain = rng.uniform(1.0 - amount, 1.0 + amount) * rng.uniform(
        1.0 - amount / 2, 1.0 + amount / 2, 3
    )
    return np.clip(np.asarray(rgb, np.float32) * gain, 0.0, 1.0).astype(np.float32)


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of two (H, W, 3) images with weights ``t`` (H, W) for ``b``."""
    return a + (b - a) * t[..., None]
