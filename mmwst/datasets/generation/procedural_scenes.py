"""Formula-driven pretraining images: scenes composed from procedural object categories.

A category is a small program with two parts, both drawn at random once:

* a contour: a closed curve in polar form ``r(t) = 1 + sum_k a_k cos(k t + phi_k)`` for
  harmonics ``k = 2..5`` (smooth, star- or bean-like blobs; never a circle, polygon or
  any other shape a downstream task uses);
* a surface: a sum of two oriented sinusoidal gratings with their own frequencies and
  angles, fixed to the object's frame (so the texture turns with the object).

An image of category ``c`` is a scene: a low-frequency noise background, one to three
instances of ``c`` (random position, scale, rotation, aspect stretch and two random
colours mapped through the grating), and up to two untextured distractor blobs of
random other contours painted underneath. The label is ``c``. Telling categories apart
needs shape (the contour up to rotation and scale) and texture (the grating's
frequencies and angles relative to the contour); colour and position carry nothing.

Everything is a pure function of the arguments: the same seed gives the same images.
"""

from __future__ import annotations

import numpy as np

#: Bump when the rendered images change, so caches keyed by it are not reused.
SCENES_VERSION = 1

_HARMONICS = np.arange(2, 6)  # contour harmonics k


def sample_programs(num_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Contour and surface parameters of ``num_classes`` categories.

    Returns:
        dict[str, np.ndarray]: ``amp`` and ``phase`` (C, 4) of the contour harmonics,
        ``freq`` and ``angle`` (C, 2) of the two gratings.
    """
    if num_classes < 1:
        raise ValueError(f'num_classes must be positive, got {num_classes}')
    rng = np.random.default_rng([seed, 0x5CE])
    amp = rng.uniform(0.0, 0.35, size=(num_classes, len(_HARMONICS)))
    amp /= np.maximum(amp.sum(axis=1, keepdims=True) / 0.6, 1.0)  # keep r(t) > 0.4
    return dict(
        amp=amp,
        phase=rng.uniform(0, 2 * np.pi, size=(num_classes, len(_HARMONICS))),
        freq=rng.uniform(1.0, 6.0, size=(num_classes, 2)),
        angle=rng.uniform(0, np.pi, size=(num_classes, 2)),
    )


def _inside(u: np.ndarray, v: np.ndarray, amp: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Whether object-frame points (K, H, W) lie inside contours ``amp/phase`` (K, 4).

    ``cos(k t + phi)`` is the real part of ``z^k e^{i phi}`` with ``z = e^{i t}``, so
    the harmonics cost multiplications only.
    """
    r = np.hypot(u, v)
    z = ((u + 1j * v) / np.maximum(r, 1e-6)).astype(np.complex64)
    rot = np.exp(1j * phase).astype(np.complex64)  # (K, 4)
    radius = np.ones_like(r)
    power = z
    for k in range(2, int(_HARMONICS[-1]) + 1):
        power = power * z  # z^k
        j = k - int(_HARMONICS[0])
        if j >= 0:
            radius += amp[:, j, None, None] * (power * rot[:, j, None, None]).real
    return r < radius


def _noise_background(rng: np.random.Generator, num: int, size: int) -> np.ndarray:
    """Smooth random colour fields (K, size, size, 3) in [0, 1]."""
    coarse = rng.random((num, 4, 4, 3))
    grid = np.linspace(0, 3, size)
    i0 = np.floor(grid).astype(int).clip(0, 2)
    w = (grid - i0)[None, :, None, None]
    rows = coarse[:, i0] * (1 - w) + coarse[:, i0 + 1] * w  # (K, size, 4, 3)
    w = (grid - i0)[None, None, :, None]
    field = rows[:, :, i0] * (1 - w) + rows[:, :, i0 + 1] * w
    tone = rng.uniform(0.1, 0.6, size=(num, 1, 1, 1))
    return (field * tone).astype(np.float32)


def _frames(rng: np.random.Generator, num: int, size: int, scale: tuple[float, float]):
    """Random object frames: object coordinates (u, v) of every pixel, (K, H, W) each."""
    axis = np.linspace(0, 1, size, dtype=np.float32)
    ys, xs = np.meshgrid(axis, axis, indexing='ij')
    cx, cy = rng.uniform(0.2, 0.8, size=(2, num, 1, 1)).astype(np.float32)
    s = rng.uniform(*scale, size=(num, 1, 1)).astype(np.float32)
    stretch = rng.uniform(0.75, 1.33, size=(num, 1, 1)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, size=(num, 1, 1)).astype(np.float32)
    dx, dy = xs[None] - cx, ys[None] - cy
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / (s * stretch)
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / (s / stretch)
    return u, v


def render_scenes(
    programs: dict[str, np.ndarray], labels: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Render one scene per label.

    Args:
        programs (dict[str, np.ndarray]): Output of :func:`sample_programs`.
        labels (np.ndarray): (K,) category of each image.
        size (int): Image side in pixels.
        rng (np.random.Generator): Source of layouts and colours.

    Returns:
        np.ndarray: (K, size, size, 3) uint8 RGB images.
    """
    num = len(labels)
    num_classes = len(programs['amp'])
    canvas = size * 2  # rendered at twice the side, box-filtered down
    image = _noise_background(rng, num, canvas)
    # distractors: plain blobs of other contours, under the labelled objects
    for _ in range(2):
        present = rng.random(num) < 0.5
        other = rng.integers(0, num_classes, size=num)
        u, v = _frames(rng, num, canvas, (0.06, 0.16))
        mask = _inside(u, v, programs['amp'][other], programs['phase'][other])
        mask &= present[:, None, None]
        colour = rng.random((num, 1, 1, 3), dtype=np.float32)
        image = np.where(mask[..., None], colour, image)
    # one to three instances of the labelled category
    copies = rng.integers(1, 4, size=num)
    for copy in range(3):
        present = copies > copy
        u, v = _frames(rng, num, canvas, (0.1, 0.22) if copy else (0.14, 0.28))
        mask = _inside(u, v, programs['amp'][labels], programs['phase'][labels])
        mask &= present[:, None, None]
        freq = programs['freq'][labels].astype(np.float32)  # (K, 2)
        angle = programs['angle'][labels].astype(np.float32)
        wave = sum(
            np.sin(
                2
                * np.pi
                * freq[:, j, None, None]
                * (np.cos(angle[:, j, None, None]) * u + np.sin(angle[:, j, None, None]) * v)
            )
            for j in range(2)
        )  # (K, H, W) in [-2, 2]
        mix = (wave[..., None] + 2.0) / 4.0
        low, high = rng.random((2, num, 1, 1, 3), dtype=np.float32)
        surface = low * (1 - mix) + high * mix
        image = np.where(mask[..., None], surface, image)
    image = image.reshape(num, size, 2, size, 2, 3).mean(axis=(2, 4))
    return (image * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
