"""Renderers of the structured mini-VTAB tasks: dSprites-like sprites and CLEVR-like scenes.

Every renderer has the signature ``render(rng, label, size) -> (size, size, 3) uint8`` and
draws one image of class ``label`` from the random stream ``rng``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .common import canvas_side, finish

# --------------------------------------------------------------------------- sprites

#: Location and orientation bins of the dSprites-like tasks.
SPRITE_BINS = 16
#: Largest sprite radius (centroid to farthest point) as a fraction of the image side.
LOC_RADIUS = 0.15
ORI_RADIUS = 0.28


def _normalised(points: np.ndarray) -> np.ndarray:
    """A polygon moved to its area centroid and scaled to a farthest point at distance 1."""
    x, y = points[:, 0], points[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2.0
    cx = ((x + np.roll(x, -1)) * cross).sum() / (6.0 * area)
    cy = ((y + np.roll(y, -1)) * cross).sum() / (6.0 * area)
    centred = points - np.array([cx, cy])
    return centred / np.sqrt((centred**2).sum(axis=1)).max()


def _make_sprites() -> dict[str, np.ndarray]:
    """Unit sprites (y up). The heart and the arrowhead point along +x at angle 0."""
    t = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
    heart_x = 16.0 * np.sin(t) ** 3
    heart_y = 13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t)
    # the classic curve has its tip at -y; turn it a quarter turn so that the tip is at +x
    heart = np.stack([-heart_y, heart_x], axis=1)
    return {
        'square': _normalised(np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])),
        'ellipse': _normalised(np.stack([np.cos(t), 0.5 * np.sin(t)], axis=1)),
        'heart': _normalised(heart),
        'arrow': _normalised(np.array([[1.0, 0.0], [-0.5, 0.55], [-0.15, 0.0], [-0.5, -0.55]])),
    }


SPRITES = _make_sprites()
LOC_SHAPES = ('square', 'ellipse', 'heart')
#: Only sprites whose orientation is unambiguous over the full turn.
ORI_SHAPES = ('heart', 'arrow')


def draw_sprite(
    shape: str, x: float, y: float, radius: float, angle: float, size: int
) -> np.ndarray:
    """A white sprite on black.

    Args:
        shape (str): A key of :data:`SPRITES`.
        x (float): Centroid, in image units from the left edge.
        y (float): Centroid, in image units from the top edge.
        radius (float): Centroid-to-farthest-point distance in image units.
        angle (float): Counter-clockwise turn on screen in radians (0: pointing right).
        size (int): Output side in pixels.

    Returns:
        np.ndarray: A (size, size, 3) uint8 image.
    """
    side = canvas_side(size)
    c, s = math.cos(angle), math.sin(angle)
    pts = SPRITES[shape]
    px = (x + radius * (c * pts[:, 0] - s * pts[:, 1])) * side
    py = (y - radius * (s * pts[:, 0] + c * pts[:, 1])) * side  # screen y grows downwards
    canvas = Image.new('L', (side, side), 0)
    ImageDraw.Draw(canvas).polygon(list(zip(px.tolist(), py.tolist())), fill=255)
    return finish(canvas, size)


def render_dsprites_loc(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A square, ellipse or heart of random scale, turn and height; label = x-position bin.

    The centroid's x lies in bin ``label`` of :data:`SPRITE_BINS` equal bins spanning
    ``[LOC_RADIUS, 1 - LOC_RADIUS]`` of the image width.
    """
    low, high = LOC_RADIUS, 1.0 - LOC_RADIUS
    width = (high - low) / SPRITE_BINS
    x = low + (label + rng.uniform()) * width
    y = rng.uniform(low, high)
    shape = LOC_SHAPES[int(rng.integers(len(LOC_SHAPES)))]
    radius = LOC_RADIUS * rng.uniform(0.5, 1.0)
    return draw_sprite(shape, x, y, radius, rng.uniform(0.0, 2.0 * math.pi), size)


def render_dsprites_ori(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A heart or arrowhead anywhere; label = bin of the direction its tip points in.

    Bin ``k`` holds the directions ``[k, k + 1) * 360 / SPRITE_BINS`` degrees,
    counter-clockwise on screen from "pointing right".
    """
    angle = (label + rng.uniform()) * 2.0 * math.pi / SPRITE_BINS
    radius = ORI_RADIUS * rng.uniform(0.65, 1.0)
    x, y = rng.uniform(ORI_RADIUS, 1.0 - ORI_RADIUS, 2)
    shape = ORI_SHAPES[int(rng.integers(len(ORI_SHAPES)))]
    return draw_sprite(shape, x, y, radius, angle, size)


# --------------------------------------------------------------------------- CLEVR-like scenes

#: Saturated CLEVR colours (grey left out, so that objects differ from the grey floor).
CLEVR_COLOURS = np.array(
    [
        [173, 35, 35],
        [42, 75, 215],
        [29, 105, 20],
        [129, 74, 25],
        [129, 38, 192],
        [41, 208, 208],
        [255, 238, 51],
    ],
    np.float32,
)
CLEVR_SHAPES = ('sphere', 'cube', 'cylinder')
#: Counting task: 3..10 objects.
CLEVR_MIN_OBJECTS, CLEVR_MAX_OBJECTS = 3, 10
#: Camera: a floor point at depth z is seen at image row ``_HORIZON + _ROW_SCALE / z``
#: (image units) and an object's screen size is ``_FOCAL / z`` times its world size.
_HORIZON, _ROW_SCALE, _FOCAL = -0.3, 5.0, 1.2
#: Depths (world units) of the objects; the counting scenes use the whole range.
CLEVR_NEAR, CLEVR_FAR = 4.0, 11.0
#: Distance task: the closest object's depth is binned at these edges (even steps of 1 / z,
#: so every bin spans the same number of image rows).
CLEVR_DIST_EDGES = tuple(float(1.0 / v) for v in np.linspace(1.0 / CLEVR_NEAR, 1.0 / 9.0, 7))
#: World half-sizes of small and large objects (CLEVR has two sizes).
_OBJECT_SIZES = (0.3, 0.52)
_GAP_PIXELS = 2.0  # output pixels between the boxes of any two objects


def floor_row(depth: float) -> float:
    """Image row (image units from the top) of a floor point at ``depth``."""
    return _HORIZON + _ROW_SCALE / depth


def _object_box(shape: str, x: float, y: float, rho: float) -> tuple[float, float, float, float]:
    """Screen box (x0, y0, x1, y1) in image units of an object whose base centre is (x, y)."""
    if shape == 'sphere':
        return x - rho, y - 2.0 * rho, x + rho, y
    if shape == 'cube':
        a = 1.7 * rho
        shift = abs(_cube_shift(x, a))
        return x - a / 2 - shift, y - 1.4 * a, x + a / 2 + shift, y
    w = 1.8 * rho
    return x - w / 2, y - 1.6 * rho - 0.2 * w, x + w / 2, y + 0.2 * w


def _cube_shift(x: float, a: float) -> float:
    """Sideways shift of a cube's top face: the far faces lean towards the image centre."""
    return -(x - 0.5) * 0.6 * a


def _candidates(rng: np.random.Generator, depths: np.ndarray):
    """Random objects standing at ``depths``, anywhere across the view (lazily built)."""
    n = len(depths)
    world = np.take(_OBJECT_SIZES, rng.integers(2, size=n)) * rng.uniform(0.9, 1.1, n)
    rho = (_FOCAL * world / depths).tolist()
    x = (0.5 + rng.uniform(-1.0, 1.0, n) * (0.5 - 1.1 * np.asarray(rho))).tolist()
    shapes = rng.integers(len(CLEVR_SHAPES), size=n).tolist()
    colours = rng.integers(len(CLEVR_COLOURS), size=n).tolist()
    metal = rng.integers(2, size=n).tolist()
    for i, depth in enumerate(depths.tolist()):
        yield dict(
            shape=CLEVR_SHAPES[shapes[i]],
            colour=CLEVR_COLOURS[colours[i]],
            metal=bool(metal[i]),
            depth=depth,
            x=x[i],
            y=floor_row(depth),
            rho=rho[i],
        )


def _fits(box, boxes, size: int) -> bool:
    margin = 1.0 / size
    gap = _GAP_PIXELS / size
    if box[0] < margin or box[1] < margin or box[2] > 1 - margin or box[3] > 1 - margin:
        return False
    for other in boxes:
        apart_x = box[0] >= other[2] + gap or other[0] >= box[2] + gap
        apart_y = box[1] >= other[3] + gap or other[1] >= box[3] + gap
        if not (apart_x or apart_y):
            return False
    return True


def _inverse_depth(rng: np.random.Generator, near: float, far: float, n=None):
    """Depths in [near, far] drawn uniformly in 1 / depth (uniformly in image rows)."""
    return 1.0 / rng.uniform(1.0 / far, 1.0 / near, n)


def _place(
    rng: np.random.Generator,
    size: int,
    count: int,
    required: int,
    near: float,
    closest: float | None = None,
) -> list[dict] | None:
    """Up to ``count`` objects with separated screen boxes, None if fewer than ``required``.

    Each object is the first of 40 random candidates (depth in [near, CLEVR_FAR], size,
    shape, colour, sideways position) that fits among those already placed; an object none
    of whose candidates fits is left out. With ``closest``, the first object stands at that
    depth (and is always placed, or None is returned).
    """
    tries = 40
    objects: list[dict] = []
    boxes: list[tuple] = []
    for index in range(count):
        if index == 0 and closest is not None:
            depths = np.full(tries, closest)
        else:
            depths = _inverse_depth(rng, near, CLEVR_FAR, tries)
        for obj in _candidates(rng, depths):
            box = _object_box(obj['shape'], obj['x'], obj['y'], obj['rho'])
            if _fits(box, boxes, size):
                objects.append(obj)
                boxes.append(box)
                break
        else:
            if not objects or len(objects) + count - 1 - index < required:
                return None
    return objects


def _floor(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey floor, lighter towards the back and the middle (equal R, G and B)."""
    t = (np.arange(side, dtype=np.float32) + 0.5) / side
    level = rng.uniform(0.42, 0.55)
    rows = level + 0.12 * (1.0 - t)
    cols = 1.0 - 0.12 * (2.0 * t - 1.0) ** 2
    grey = np.outer(rows, cols)
    return np.repeat(grey[..., None], 3, axis=2), rows


def _shade(colour: np.ndarray, factor: float, white: float = 0.0) -> tuple[int, int, int]:
    rgb = colour * factor
    rgb = rgb + (255.0 - rgb) * white
    return tuple(int(v) for v in np.clip(rgb, 0, 255).round())


def _draw_object(draw: ImageDraw.ImageDraw, obj: dict, side: int) -> None:
    x, y, rho = obj['x'] * side, obj['y'] * side, obj['rho'] * side
    colour, metal = obj['colour'], obj['metal']
    if obj['shape'] == 'sphere':
        steps = 10
        for i in range(steps):
            t = i / (steps - 1)
            r = rho * (1.0 - 0.85 * t)
            cx, cy = x - 0.35 * rho * t, y - rho - 0.35 * rho * t
            factor = 0.55 + 0.5 * t
            white = 0.45 * max(0.0, t - 0.75) / 0.25 if metal else 0.0
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_shade(colour, factor, white))
    elif obj['shape'] == 'cube':
        a = 1.7 * rho
        e, d = _cube_shift(obj['x'], a / side) * side, 0.4 * a
        x0, x1, top = x - a / 2, x + a / 2, y - a
        edge = x0 if e < 0 else x1
        draw.polygon(
            [(edge, y), (edge, top), (edge + e, top - d), (edge + e, y - d)],
            fill=_shade(colour, 0.6),
        )
        draw.rectangle([x0, top, x1, y], fill=_shade(colour, 0.8))
        draw.polygon(
            [(x0, top), (x1, top), (x1 + e, top - d), (x0 + e, top - d)],
            fill=_shade(colour, 1.0, 0.15 if metal else 0.0),
        )
    else:
        w = 1.8 * rho
        h, d = 1.6 * rho, 0.4 * w
        x0, x1, top = x - w / 2, x + w / 2, y - h
        draw.ellipse([x0, y - d / 2, x1, y + d / 2], fill=_shade(colour, 0.6))
        bands = 6
        for i in range(bands):
            t = i / (bands - 1)
            factor = 0.95 - 0.35 * t + (0.15 if metal and i == 1 else 0.0)
            bx0 = x0 + w * i / bands
            bx1 = min(x1, bx0 + w / bands + 1)  # a little overlap, so no seam shows
            draw.rectangle([bx0, top, bx1, y], fill=_shade(colour, factor))
        draw.ellipse([x0, top - d / 2, x1, top + d / 2], fill=_shade(colour, 1.0, 0.1))


def render_clevr_scene(rng: np.random.Generator, objects: list[dict], size: int) -> np.ndarray:
    """Draw placed objects (shadows first, then far to near) on a perspective floor."""
    side = canvas_side(size)
    floor, rows = _floor(rng, side)
    canvas = Image.fromarray((floor * 255.0 + 0.5).astype(np.uint8), mode='RGB')
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        x, y, rho = obj['x'] * side, obj['y'] * side, obj['rho'] * side
        row = int(min(side - 1, max(0, y)))
        grey = int(rows[row] * 0.62 * 255.0)
        cx, cy = x + 0.5 * rho, y - 0.05 * rho
        draw.ellipse(
            [cx - 1.2 * rho, cy - 0.35 * rho, cx + 1.2 * rho, cy + 0.35 * rho],
            fill=(grey, grey, grey),
        )
    for obj in sorted(objects, key=lambda o: -o['depth']):
        _draw_object(draw, obj, side)
    return finish(canvas, size)


def _scene(
    rng: np.random.Generator,
    size: int,
    count: int,
    required: int,
    near: float,
    closest: float | None = None,
) -> list[dict]:
    for _ in range(200):
        objects = _place(rng, size, count, required, near, closest)
        if objects is not None:
            return objects
    raise RuntimeError(f'could not place {required} objects in a {size}x{size} image')


def render_clevr_count(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A scene of ``label + 3`` objects on the floor.

    The objects' screen boxes are at least 2 output pixels apart, so objects never touch
    or hide one another (only their grey shadows may reach a neighbour). Crowded scenes
    hold more of the far, small objects: near, large ones fit less often.
    """
    count = label + CLEVR_MIN_OBJECTS
    return render_clevr_scene(rng, _scene(rng, size, count, count, CLEVR_NEAR), size)


def render_clevr_dist(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A scene of 3..10 objects; label = bin of the closest object's depth.

    The closest depth is drawn uniformly in image rows within
    ``[CLEVR_DIST_EDGES[label], CLEVR_DIST_EDGES[label + 1])``; the other objects stand
    farther away (as many of the drawn count as fit, at least 3 objects in all).
    """
    near = _inverse_depth(rng, CLEVR_DIST_EDGES[label], CLEVR_DIST_EDGES[label + 1])
    count = int(rng.integers(CLEVR_MIN_OBJECTS, CLEVR_MAX_OBJECTS + 1))
    objects = _scene(rng, size, count, CLEVR_MIN_OBJECTS, near, closest=near)
    return render_clevr_scene(rng, objects, size)
