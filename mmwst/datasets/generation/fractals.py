"""Formula-driven pretraining images: fractal categories from iterated function systems.

Each category is one iterated function system (IFS): ``n`` affine maps
``w_j(p) = A_j p + b_j`` of the plane (2 <= n <= 4), drawn at random and kept only if
its attractor covers a sensible part of the frame (neither a few points nor a filled
blob). An image of the category renders the attractor of a slightly perturbed copy of
the system by the chaos game: many chains start at random points and apply a randomly
chosen map at each step (map ``j`` with probability proportional to ``|det A_j|``);
after a burn-in the visited points lie on the attractor. Points are accumulated in a
canvas twice the image side, coloured by the map that produced them (one random
palette per image), and the canvas is box-filtered down, so small images stay clean.

This follows the idea of FractalDB (Kataoka et al., "Pre-training without Natural
Images", ACCV 2020; Nakashima et al. / Kataoka et al., CVPR 2022, for ViTs): a
classifier learns to tell the systems apart, and the features it needs (edges,
curvature, self-similar texture, part structure) transfer. The implementation here is
our own: maps are built from rotations and singular values in ``(0.2, 0.9)`` (every map
contracts, so the chaos game converges from any start), and the category filter is a
coverage test at a coarse resolution.

Everything is a pure function of its arguments: :func:`sample_systems` of
``(num_classes, seed)`` and :func:`render_fractals` of the systems and the per-image
seed, so a dataset is reproduced bit for bit from its seed.
"""

from __future__ import annotations

import numpy as np

#: Bump when the rendered images change, so caches keyed by it are not reused.
FRACTALS_VERSION = 1

_MAPS = (2, 4)  # inclusive range of maps per system
_SINGULAR = (0.2, 0.9)  # singular values of every map's linear part
_COVERAGE = (0.08, 0.45)  # accepted share of a 32 x 32 grid hit by the attractor
_SUPERSAMPLE = 2  # canvas side = image side x this


def _rotation(theta: np.ndarray) -> np.ndarray:
    """(..., 2, 2) rotation matrices for angles ``theta`` (...)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _random_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` contractive affine maps as an (n, 2, 3) array ``[A | b]``."""
    rot_a = _rotation(rng.uniform(0, 2 * np.pi, n))
    rot_b = _rotation(rng.uniform(0, 2 * np.pi, n))
    sv = rng.uniform(*_SINGULAR, size=(n, 2))
    flip = np.where(rng.random(n) < 0.5, -1.0, 1.0)  # reflections too
    diag = np.zeros((n, 2, 2))
    diag[:, 0, 0] = sv[:, 0]
    diag[:, 1, 1] = sv[:, 1] * flip
    linear = rot_a @ diag @ rot_b  # (n, 2, 2)
    shift = rng.uniform(-1.0, 1.0, size=(n, 2, 1))
    return np.concatenate([linear, shift], axis=2)


def chaos_game(
    maps: np.ndarray, rng: np.random.Generator, chains: int = 64, steps: int = 80, burn: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the attractors of a batch of systems.

    Args:
        maps (np.ndarray): (K, n, 2, 3) systems of ``n`` maps each.
        rng (np.random.Generator): Source of the start points and map choices.
        chains (int): Independent chains per system. Defaults to 64.
        steps (int): Steps per chain. Defaults to 80.
        burn (int): First steps of each chain that are not kept. Defaults to 16.

    Returns:
        tuple[np.ndarray, np.ndarray]: points (K, P, 2) and the index of the map that
        produced each point (K, P), with ``P = chains * (steps - burn)``.
    """
    num, n = maps.shape[:2]
    det = np.abs(np.linalg.det(maps[..., :2]))  # (K, n)
    cdf = np.cumsum(det / det.sum(axis=1, keepdims=True), axis=1)  # (K, n)
    cdf[:, -1] = 1.0
    point = rng.uniform(-1.0, 1.0, size=(num, chains, 2))
    rows = np.arange(num)[:, None]
    kept_points, kept_maps = [], []
    for step in range(steps):
        u = rng.random((num, chains, 1))
        choice = (u > cdf[:, None, :]).sum(axis=2)  # (K, chains)
        m = maps[rows, choice]  # (K, chains, 2, 3)
        point = np.einsum('kcij,kcj->kci', m[..., :2], point) + m[..., 2]
        if step >= burn:
            kept_points.append(point)
            kept_maps.append(choice)
    return np.concatenate(kept_points, axis=1), np.concatenate(kept_maps, axis=1)


def _normalise(points: np.ndarray) -> np.ndarray:
    """Scale each cloud (K, P, 2) into [0, 1]^2 keeping its aspect ratio, centred."""
    lo = np.percentile(points, 0.5, axis=1, keepdims=True)
    hi = np.percentile(points, 99.5, axis=1, keepdims=True)
    span = np.maximum((hi - lo).max(axis=2, keepdims=True), 1e-6)
    centre = (lo + hi) / 2
    return (points - centre) / span + 0.5


def coverage(maps: np.ndarray, rng: np.random.Generator, grid: int = 32) -> np.ndarray:
    """Share of a ``grid`` x ``grid`` raster hit by each system's attractor (K,)."""
    points, _ = chaos_game(maps, rng, chains=32, steps=60, burn=12)
    cells = np.clip((_normalise(points) * grid).astype(int), 0, grid - 1)
    flat = cells[..., 1] * grid + cells[..., 0]
    hit = np.zeros((len(maps), grid * grid), dtype=bool)
    hit[np.arange(len(maps))[:, None], flat] = True
    return hit.mean(axis=1)


def sample_systems(num_classes: int, seed: int = 0) -> list[np.ndarray]:
    """``num_classes`` accepted systems, each an (n, 2, 3) array; a function of the seed.

    Candidates are drawn in rounds and kept when their attractor covers between 8% and
    45% of a 32 x 32 raster (a degenerate system collapses to a curve or a few points;
    a too-full one is a blob).
    """
    if num_classes < 1:
        raise ValueError(f'num_classes must be positive, got {num_classes}')
    rng = np.random.default_rng([seed, 0x1F5])
    systems: list[np.ndarray] = []
    while len(systems) < num_classes:
        n = int(rng.integers(_MAPS[0], _MAPS[1] + 1))
        batch = np.stack([_random_maps(rng, n) for _ in range(64)])
        cov = coverage(batch, rng)
        for maps, c in zip(batch, cov):
            if _COVERAGE[0] <= c <= _COVERAGE[1] and len(systems) < num_classes:
                systems.append(maps)
    return systems


def perturb(maps: np.ndarray, rng: np.random.Generator, count: int, amount: float) -> np.ndarray:
    """``count`` copies of one system (n, 2, 3), every parameter scaled by a factor in
    ``1 +- amount`` (the within-category variation)."""
    factors = rng.uniform(1.0 - amount, 1.0 + amount, size=(count, *maps.shape))
    return maps[None] * factors


def _palettes(rng: np.random.Generator, count: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image: one colour per map (count, n, 3) and a dark background (count, 3)."""
    hue = rng.random((count, 1)) + rng.uniform(-0.15, 0.15, size=(count, n))
    sat = rng.uniform(0.4, 1.0, size=(count, n))
    val = rng.uniform(0.7, 1.0, size=(count, n))
    k = (np.arange(3)[None, None, :] * 2 / 3 + hue[..., None]) % 1.0  # (count, n, 3)
    wave = 0.5 + 0.5 * np.cos(2 * np.pi * k)
    colours = val[..., None] * (1 - sat[..., None] + sat[..., None] * wave)
    background = rng.uniform(0.0, 0.25, size=(count, 1)) * rng.uniform(0.5, 1.0, size=(count, 3))
    return colours, background


def render_fractals(
    maps: np.ndarray, size: int, rng: np.random.Generator, chains: int = 64, steps: int = 80
) -> np.ndarray:
    """Render a batch of systems as RGB images.

    Args:
        maps (np.ndarray): (K, n, 2, 3) systems (all with the same ``n``).
        size (int): Image side in pixels.
        rng (np.random.Generator): Source of points, framing and colours.
        chains (int): Chaos-game chains per image. Defaults to 64.
        steps (int): Steps per chain (the first 16 are burn-in). Defaults to 80.

    Returns:
        np.ndarray: (K, size, size, 3) uint8 RGB images.
    """
    num, n = maps.shape[:2]
    canvas = size * _SUPERSAMPLE
    points, which = chaos_game(maps, rng, chains=chains, steps=steps, burn=16)
    points = _normalise(points)
    # random framing: the attractor fills 60-95% of the frame, anywhere inside it
    scale = rng.uniform(0.6, 0.95, size=(num, 1, 1))
    offset = rng.uniform(0, 1, size=(num, 1, 2)) * (1 - scale)
    xy = ((points * scale + offset) * canvas).astype(int).clip(0, canvas - 1)
    flat = (np.arange(num)[:, None] * canvas + xy[..., 1]) * canvas + xy[..., 0]  # (K, P)
    colours, background = _palettes(rng, num, n)
    point_rgb = colours[np.arange(num)[:, None], which]  # (K, P, 3)
    total = num * canvas * canvas
    flat = flat.ravel()
    hits = np.bincount(flat, minlength=total).astype(np.float32)
    rgb = np.stack(
        [np.bincount(flat, weights=point_rgb[..., c].ravel(), minlength=total) for c in range(3)],
        axis=-1,
    ).astype(np.float32)  # (K * canvas^2, 3)
    mean_rgb = rgb / np.maximum(hits, 1.0)[:, None]
    alpha = (1.0 - np.exp(-hits))[:, None]  # a pixel hit twice is mostly covered
    back = np.repeat(background.astype(np.float32), canvas * canvas, axis=0)
    image = alpha * mean_rgb + (1 - alpha) * back
    # box filter: (K, size, s, size, s, 3) -> (K, size, size, 3)
    s = _SUPERSAMPLE
    image = image.reshape(num, size, s, size, s, 3).mean(axis=(2, 4))
    return (image * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
