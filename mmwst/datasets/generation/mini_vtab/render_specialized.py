"""Renderers of the specialized mini-VTAB tasks: aerial land-cover tiles and tissue patches.

Every renderer has the signature ``render(rng, label, size) -> (size, size, 3) uint8`` and
draws one image of class ``label`` from the random stream ``rng``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .common import (
    canvas_side,
    finish,
    fractal_noise,
    grid_coords,
    jitter,
    mix,
    rotated_coords,
    smooth_noise,
    smoothstep,
)

# --------------------------------------------------------------------------- land cover

LAND_COVER_CLASSES = (
    'water',
    'forest',
    'crops',
    'urban',
    'highway',
    'river',
    'desert',
    'snow',
)
#: Classes whose texture may cover part of another class's tile (not the line-like ones).
_MIXABLE = (0, 1, 2, 3, 6, 7)


def _paint(colour: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """A colour modulated per pixel by ``shade`` (around 1)."""
    colour = np.asarray(colour, np.float32)
    return colour[None, None, :] * np.asarray(shade, np.float32)[..., None]


def _vegetation(rng: np.random.Generator, side: int) -> np.ndarray:
    """Grass and field background of the highway and river tiles."""
    greens = ((0.34, 0.45, 0.22), (0.45, 0.45, 0.28), (0.3, 0.38, 0.2))
    grass = jitter(rng, greens[int(rng.integers(len(greens)))], 0.15)
    bare = jitter(rng, (0.5, 0.47, 0.3), 0.15)
    patches = smoothstep(0.3, 0.9, smooth_noise(rng, side, rng.uniform(2, 5)))
    base = _paint(grass, 1.0 + 0.06 * fractal_noise(rng, side, 12))
    return mix(base, _paint(bare, np.ones((side, side))), patches * rng.uniform(0.3, 0.8))


def _water(rng: np.random.Generator, side: int) -> np.ndarray:
    palette = np.array(
        [(0.07, 0.16, 0.3), (0.09, 0.27, 0.3), (0.1, 0.2, 0.17), (0.3, 0.3, 0.22), (0.2, 0.3, 0.4)]
    )
    colour = rng.dirichlet(np.ones(len(palette)) * 0.7) @ palette
    u, _ = rotated_coords(side, rng.uniform(0, math.pi))
    ripple = 0.03 * np.sin(2 * math.pi * u * rng.uniform(14, 30) + 2 * smooth_noise(rng, side, 3))
    shade = 1.0 + 0.08 * smooth_noise(rng, side, rng.uniform(1.5, 3)) + ripple
    return _paint(jitter(rng, colour, 0.2), shade)


def _forest(rng: np.random.Generator, side: int) -> np.ndarray:
    palette = np.array(
        [
            (0.1, 0.24, 0.09),
            (0.16, 0.28, 0.12),
            (0.25, 0.3, 0.12),
            (0.12, 0.2, 0.12),
            (0.36, 0.27, 0.14),
        ]
    )
    colour = jitter(rng, palette[int(rng.integers(len(palette)))], 0.2)
    crowns = fractal_noise(rng, side, rng.uniform(10, 16), octaves=2, gain=0.6)
    shade = 1.0 + 0.28 * crowns - 0.35 * smoothstep(-0.6, -1.4, crowns)
    return _paint(colour, shade + 0.1 * smooth_noise(rng, side, 2))


def _crops(rng: np.random.Generator, side: int) -> np.ndarray:
    palette = np.array(
        [
            (0.35, 0.5, 0.2),
            (0.68, 0.6, 0.34),
            (0.45, 0.35, 0.22),
            (0.5, 0.58, 0.28),
            (0.6, 0.52, 0.32),
        ]
    )
    out = np.zeros((side, side, 3), np.float32)
    # 1-3 parcels cut by straight boundaries, each with its own furrow direction and colours
    owner = np.zeros((side, side), np.int64)
    parcels = int(rng.integers(1, 4))
    for p in range(1, parcels):
        u, _ = rotated_coords(side, rng.uniform(0, 2 * math.pi))
        owner[u > rng.uniform(-0.2, 0.25)] = p
    for p in range(parcels):
        u, _ = rotated_coords(side, rng.uniform(0, math.pi))
        period = rng.uniform(0.07, 0.14)
        stripes = smoothstep(-0.3, 0.3, np.sin(2 * math.pi * u / period))
        a, b = (jitter(rng, palette[i], 0.12) for i in rng.choice(len(palette), 2, replace=False))
        grain = 1.0 + 0.05 * smooth_noise(rng, side, 20)
        field = mix(_paint(a, grain), _paint(b, grain), stripes)
        out = np.where((owner == p)[..., None], field, out)
    return out


def _urban(rng: np.random.Generator, side: int) -> np.ndarray:
    u, v = rotated_coords(side, rng.uniform(0, math.pi / 2))
    block = rng.uniform(0.09, 0.16)
    street = block * rng.uniform(0.15, 0.25)
    bu, bv = np.floor(u / block), np.floor(v / block)
    fu, fv = u / block - bu, v / block - bv
    # 2 x 2 buildings per block, each with its own roof
    su, sv = np.floor(fu * 2), np.floor(fv * 2)
    key = ((bu * 7 + bv * 13 + su * 3 + sv * 5) % 31).astype(np.int64)
    roofs = np.array(
        [
            (0.55, 0.55, 0.55),
            (0.75, 0.74, 0.72),
            (0.6, 0.35, 0.28),
            (0.35, 0.35, 0.38),
            (0.82, 0.8, 0.78),
            (0.5, 0.45, 0.4),
        ]
    )
    table = roofs[rng.integers(len(roofs), size=31)] * rng.uniform(0.85, 1.15, (31, 1))
    out = table[key].astype(np.float32)
    s = street / block
    in_street = (fu < s) | (fv < s)
    gap = ((np.abs(fu - 0.5 - s / 2) < 0.04) | (np.abs(fv - 0.5 - s / 2) < 0.04)) & ~in_street
    shadow = ((fu - s) % 0.5 < 0.08) & ~in_street
    out = out * np.where(shadow, 0.7, 1.0)[..., None]
    asphalt = jitter(rng, (0.3, 0.3, 0.31), 0.15)
    out = np.where((in_street | gap)[..., None], asphalt[None, None], out)
    trees = smoothstep(1.2, 1.8, fractal_noise(rng, side, 14, octaves=2))
    return mix(out, _paint(np.array([0.18, 0.3, 0.14]), np.ones((side, side))), trees * 0.9)


def _highway(rng: np.random.Generator, side: int) -> np.ndarray:
    base = _vegetation(rng, side)
    roads = 1 + int(rng.uniform() < 0.3)
    for r in range(roads):
        u, v = rotated_coords(side, rng.uniform(0, math.pi))
        offset = rng.uniform(-0.15, 0.15) if r == 0 else rng.uniform(-0.3, 0.3)
        width = rng.uniform(0.05, 0.09) if r == 0 else rng.uniform(0.025, 0.04)
        d = np.abs(v - offset)
        asphalt = jitter(rng, (0.42, 0.42, 0.43), 0.15)
        road = _paint(asphalt, 1.0 + 0.03 * smooth_noise(rng, side, 30))
        if r == 0:  # a dashed centre line and light shoulders
            dashes = (np.abs(d) < width * 0.06) & (np.sin(2 * math.pi * u / 0.06) > 0)
            road = np.where(dashes[..., None], np.float32(0.8), road)
            shoulder = smoothstep(width * 1.6, width * 1.0, d) * 0.6
            base = mix(base, _paint(jitter(rng, (0.58, 0.55, 0.48)), np.ones_like(d)), shoulder)
        base = mix(base, road, smoothstep(width, width * 0.8, d))
    return base


def _river(rng: np.random.Generator, side: int) -> np.ndarray:
    base = _vegetation(rng, side)
    u, v = rotated_coords(side, rng.uniform(0, math.pi))
    wavelength = rng.uniform(0.5, 1.2)
    centre = rng.uniform(-0.1, 0.1) + rng.uniform(0.05, 0.15) * np.sin(
        2 * math.pi * u / wavelength + rng.uniform(0, 2 * math.pi)
    )
    width = rng.uniform(0.05, 0.11) * (1.0 + 0.2 * smooth_noise(rng, side, 3))
    d = np.abs(v - centre)
    bank = smoothstep(width * 1.6, width * 1.1, d)
    base = mix(base, _paint(jitter(rng, (0.45, 0.4, 0.3)), np.ones_like(d)), bank * 0.5)
    return mix(base, _water(rng, side), smoothstep(width, width * 0.85, d))


def _desert(rng: np.random.Generator, side: int) -> np.ndarray:
    palette = np.array(
        [
            (0.8, 0.67, 0.46),
            (0.85, 0.7, 0.5),
            (0.78, 0.55, 0.36),
            (0.62, 0.6, 0.55),
            (0.68, 0.6, 0.42),
        ]
    )
    colour = jitter(rng, palette[int(rng.integers(len(palette)))], 0.12)
    u, _ = rotated_coords(side, rng.uniform(0, 2 * math.pi))
    warp = 0.6 * fractal_noise(rng, side, 3, octaves=2)
    phase = (u / rng.uniform(0.08, 0.18) + warp) % 1.0
    # dunes: a long lit slope, a short dark slip face
    shade = np.where(phase < 0.75, 0.92 + 0.16 * phase / 0.75, 0.72 + 0.2 * (phase - 0.75) / 0.25)
    return _paint(colour, shade + 0.03 * smooth_noise(rng, side, 25))


def _snow(rng: np.random.Generator, side: int) -> np.ndarray:
    snow = jitter(rng, (0.88, 0.9, 0.94), 0.08) * rng.uniform(0.65, 1.0)
    rock = jitter(rng, (0.36, 0.34, 0.33), 0.2)
    relief = fractal_noise(rng, side, rng.uniform(3, 6), octaves=4, gain=0.55)
    light = 1.0 + 0.12 * np.clip(np.gradient(relief, axis=1) * side / 8.0, -1.5, 1.5)
    rocky = smoothstep(0.0, 0.15, relief - rng.uniform(0.6, 1.5))
    return mix(_paint(snow, light), _paint(rock, light), rocky)


_LAND_TEXTURES = (_water, _forest, _crops, _urban, _highway, _river, _desert, _snow)


def render_land_cover(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """An aerial tile of class ``label`` of :data:`LAND_COVER_CLASSES`.

    Textures have a random orientation, scale and colour; 60% of the tiles have 10-40% of
    their area (beyond a soft straight boundary) covered by another class's texture, and
    every tile gets a random brightness, colour cast and haze.
    """
    side = canvas_side(size)
    image = _LAND_TEXTURES[label](rng, side)
    if rng.uniform() < 0.6:
        other = int(rng.choice([c for c in _MIXABLE if c != label]))
        u, _ = rotated_coords(side, rng.uniform(0, 2 * math.pi))
        edge = np.quantile(u, 1.0 - rng.uniform(0.1, 0.4))
        image = mix(image, _LAND_TEXTURES[other](rng, side), smoothstep(edge, edge + 0.03, u))
    image = image * rng.uniform(0.65, 1.35) * rng.uniform(0.85, 1.15, 3)
    haze = rng.uniform(0.0, 0.35)
    image = image + (rng.uniform(0.5, 0.75) * rng.uniform(0.9, 1.1, 3) - image) * haze
    return finish(image, size)


# --------------------------------------------------------------------------- tissue patches

CELL_CLASSES = ('stroma', 'normal', 'inflamed', 'tumour')
#: Optical densities (R, G, B) of haematoxylin (nuclei) and eosin (cytoplasm, fibres).
_HAEMATOXYLIN = np.array([0.65, 0.70, 0.29])
_EOSIN = np.array([0.07, 0.99, 0.11])


def _stain(rng: np.random.Generator, od: np.ndarray) -> np.ndarray:
    vector = np.clip(od + rng.normal(0.0, 0.06, 3), 0.02, None)
    return vector / np.linalg.norm(vector)


def _unit_circle(vertices: int) -> tuple[np.ndarray, np.ndarray]:
    if vertices not in _CIRCLES:
        t = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
        _CIRCLES[vertices] = np.cos(t), np.sin(t)
    return _CIRCLES[vertices]


_CIRCLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _ellipse(draw, x, y, rx, ry, angle, value, wobble=0.0, rng=None, vertices=16) -> None:
    """A filled (optionally wobbly) ellipse polygon on an 'L' layer."""
    cos_t, sin_t = _unit_circle(vertices)
    radius = 1.0 + wobble * rng.uniform(-1, 1, vertices) if wobble else 1.0
    px, py = rx * radius * cos_t, ry * radius * sin_t
    c, s = math.cos(angle), math.sin(angle)
    points = list(zip((x + c * px - s * py).tolist(), (y + s * px + c * py).tolist()))
    draw.polygon(points, fill=int(value))


def _nuclei(draw, rng, side, kind: str, count: int, direction: float = 0.0) -> None:
    """Draw ``count`` nuclei of one kind on the haematoxylin layer (values 0..255)."""
    if kind == 'lymphocyte':  # small, round, very dark, in a few clusters
        centres = rng.uniform(0.1, 0.9, (int(rng.integers(1, 4)), 2))
        which = rng.integers(len(centres), size=count)
        spread = rng.uniform(0.08, 0.2)
        xy = np.clip(centres[which] + rng.normal(0, spread, (count, 2)), 0, 1)
        for x, y in xy * side:
            r = rng.uniform(0.016, 0.022) * side
            _ellipse(draw, x, y, r, r, 0.0, rng.uniform(210, 255), vertices=10)
        return
    for x, y in rng.uniform(0, 1, (count, 2)) * side:
        if kind == 'spindle':  # elongated, along the fibres
            rx, ry = rng.uniform(0.05, 0.08) * side, rng.uniform(0.012, 0.02) * side
            angle = direction + rng.normal(0, 0.25)
            _ellipse(draw, x, y, rx, ry, angle, rng.uniform(170, 230))
        elif kind == 'normal':  # small, round, even
            r = rng.uniform(0.028, 0.036) * side
            _ellipse(
                draw,
                x,
                y,
                r,
                r * rng.uniform(0.85, 1),
                rng.uniform(0, math.pi),
                rng.uniform(130, 170),
            )
        else:  # tumour: large, irregular, uneven, with a dark nucleolus
            r = rng.uniform(0.045, 0.08) * side
            value = rng.uniform(110, 220)
            _ellipse(
                draw,
                x,
                y,
                r,
                r * rng.uniform(0.7, 1),
                rng.uniform(0, math.pi),
                value,
                wobble=0.22,
                rng=rng,
                vertices=12,
            )
            n = 0.22 * r
            _ellipse(
                draw,
                x + rng.normal(0, 0.2 * r),
                y + rng.normal(0, 0.2 * r),
                n,
                n,
                0,
                min(255, value + 60),
                vertices=8,
            )


def render_cell_patches(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """An H&E-stained tissue patch of class ``label`` of :data:`CELL_CLASSES`.

    stroma: fibrous pink tissue with few spindle nuclei; normal: evenly spread small round
    nuclei, mostly ringing pale gland lumens; inflamed: dense clusters of tiny dark
    lymphocytes; tumour: crowded large irregular nuclei of uneven staining. Every patch
    also has a few stray nuclei of other kinds, may hold a pale vessel or fat hole, and the
    stain colours and strengths vary per patch.
    """
    side = canvas_side(size)
    direction = rng.uniform(0, math.pi)
    u, _ = rotated_coords(side, direction + math.pi / 2)
    fibres = 0.5 + 0.5 * np.sin(
        2 * math.pi * (u / rng.uniform(0.07, 0.12) + 0.4 * smooth_noise(rng, side, 4))
    )
    fibrous = {0: 0.75, 1: 0.35, 2: 0.4, 3: 0.3}[label] * rng.uniform(0.4, 1.0)
    eosin = rng.uniform(0.35, 0.7) * (1 - fibrous + fibrous * fibres)
    eosin = eosin * (1.0 + 0.15 * fractal_noise(rng, side, 6))
    layer = Image.new('L', (side, side), 0)
    draw = ImageDraw.Draw(layer)
    lumens = int(rng.integers(1, 3)) if label == 1 and rng.uniform() < 0.7 else 0
    holes = int(rng.uniform() < 0.25)  # a vessel or fat cell in any kind of tissue
    x, y = grid_coords(side)
    for index in range(lumens + holes):
        cx, cy = rng.uniform(0.2, 0.8, 2)
        radius = rng.uniform(0.1, 0.18) if index < lumens else rng.uniform(0.06, 0.14)
        distance = np.hypot(x - cx, y - cy)
        eosin = eosin * (0.15 + 0.85 * smoothstep(radius * 0.8, radius, distance))
        if index < lumens:  # a gland: the lumen is ringed by nuclei
            for a in np.linspace(0, 2 * math.pi, int(rng.integers(7, 11)), endpoint=False):
                ring = radius * rng.uniform(1.1, 1.3)
                r = rng.uniform(0.028, 0.036) * side
                _ellipse(
                    draw,
                    (cx + ring * math.cos(a)) * side,
                    (cy + ring * math.sin(a)) * side,
                    r,
                    r,
                    0,
                    rng.uniform(130, 170),
                )
    counts = {
        0: {'spindle': (6, 15), 'lymphocyte': (0, 6), 'normal': (0, 4)},
        1: {'normal': (12, 25), 'lymphocyte': (0, 6), 'spindle': (0, 3)},
        2: {'lymphocyte': (35, 80), 'normal': (0, 8), 'spindle': (0, 4)},
        3: {'tumour': (12, 24), 'lymphocyte': (0, 8), 'spindle': (0, 3)},
    }[label]
    for kind, (low, high) in counts.items():
        _nuclei(draw, rng, side, kind, int(rng.integers(low, high + 1)), direction)
    haematoxylin = np.asarray(layer, np.float32) / 255.0 * rng.uniform(1.1, 1.7)
    haematoxylin = haematoxylin + rng.uniform(0.03, 0.1)  # cytoplasm takes a little of it
    density = (
        eosin[..., None] * _stain(rng, _EOSIN)[None, None]
        + haematoxylin[..., None] * _stain(rng, _HAEMATOXYLIN)[None, None]
    )
    image = np.exp(-density * rng.uniform(0.9, 1.2)) * rng.uniform(0.9, 1.0)
    return finish(image, size)
