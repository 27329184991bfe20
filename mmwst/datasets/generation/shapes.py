"""A procedurally generated detection and segmentation task that needs no download.

:func:`write_shapes_dataset` draws a few large, flat-coloured circles, squares and
triangles on a dark, mildly textured background and writes the same scenes twice: as
COCO instance annotations for mmdet and as label maps for mmseg::

    <root>/meta.json                         generation arguments and counts
    <root>/annotations/instances_train.json  COCO instances (categories 1..3)
    <root>/annotations/instances_val.json
    <root>/train/000000.png ...              RGB images
    <root>/val/000000.png ...
    <root>/seg/train/000000.png ...          uint8 label maps, same stems as the images
    <root>/seg/val/000000.png ...            (0 background, 1 circle, 2 square, 3 triangle)

Objects are painted in order, so later objects occlude earlier ones. Every instance is
annotated with what stays visible: its ``bbox`` is the tight box of its visible pixels,
its ``area`` their count and its polygon the exact shape vertices (a 64-gon for a
circle) when nothing covers it, otherwise the pixel-exact outline of the visible part.
A candidate object that would hide more than half of an earlier one, split it or cut a
hole in it is redrawn elsewhere, so no annotated object becomes tiny and every visible
object is annotated. The label maps use the ``reduce_zero_label=False`` convention:
mmseg sees four classes, background included.

The output depends only on the arguments: the same seed gives the same bytes.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import os.path as osp
import re

import numpy as np

CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background',) + CLASSES
PALETTE = [(220, 20, 60), (0, 160, 255), (255, 200, 0)]
SEG_PALETTE = [[0, 0, 0]] + [list(c) for c in PALETTE]

_FORMAT_VERSION = 1
_CIRCLE_VERTICES = 64
_SIZE_RANGE = (0.15, 0.45)  # object size as a fraction of the shorter image side
# circumradius per unit size: the size is a circle's diameter or a polygon's side
_CIRCUMRADIUS = {1: 0.5, 2: 1 / math.sqrt(2), 3: 1 / math.sqrt(3)}
_MIN_SIZE = 8.0  # pixels: shapes in small images stay recognisable
_MAX_OVERLAP = 0.3  # of the smaller of two objects
_MIN_VISIBLE = 0.5  # of an object's own area
_PLACEMENT_TRIES = 30
_MIN_SIDE = 32
_STEM = re.compile(r'^\d{6}\.png$')


def shapes_metainfo() -> dict:
    """Class names and palettes of the shapes task.

    Returns:
        dict: ``'det'`` holds the mmdet metainfo (3 classes, no background) and
        ``'seg'`` the mmseg metainfo (4 classes, background first).
    """
    return dict(
        det=dict(classes=CLASSES, palette=list(PALETTE)),
        seg=dict(classes=SEG_CLASSES, palette=[list(c) for c in SEG_PALETTE]),
    )


def _image_hw(image_size) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        hw = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
    ):
        hw = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f'image_size must be an int or a (height, width) pair, got {image_size!r}')
    if min(hw) < _MIN_SIDE:
        raise ValueError(f'image sides must be at least {_MIN_SIDE} pixels, got {image_size!r}')
    return hw


def _check_count(name: str, value, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


_VERTICES = {1: _CIRCLE_VERTICES, 2: 4, 3: 3}  # a whole shape's polygon, by category id


def partly_hidden(category_id: int, polygon) -> bool:
    """Whether an annotation of this generator is of a partly hidden object: its polygon
    (flat ``[x0, y0, x1, y1, ...]``) is the outline of the visible part, not the shape's
    own vertices (3 for a triangle, 4 for a square, 64 for a circle). The outline follows
    pixel edges, so it has the shape's own count only by rare coincidence."""
    if category_id not in _VERTICES:
        raise ValueError(f'category_id is one of {sorted(_VERTICES)}, got {category_id!r}')
    return len(polygon) != 2 * _VERTICES[category_id]


def _shape_vertices(label: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Counter-clockwise (on screen) vertices of a shape, rounded to 0.01 px."""
    count = _VERTICES[label]
    theta = angle - np.arange(count) * (2 * math.pi / count)
    vertices = np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], axis=1)
    return np.round(vertices, 2)


def _rasterise(vertices: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside a convex polygon (the COCO pixel convention)."""
    xs = np.arange(width) + 0.5
    ys = np.arange(height)[:, None] + 0.5
    inside = np.ones((height, width), bool)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1):
        # the vertices turn counter-clockwise on screen (y down): inside is cross <= 0
        inside &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) <= 0
    return inside


def _trace_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Outlines of a binary mask along pixel edges, one (N, 2) corner array per loop.

    Outer outlines have negative shoelace area, holes positive; pixels that touch only
    at a corner belong to different loops (4-connectivity).
    """
    padded = np.pad(mask, 1)
    fg = padded[1:-1, 1:-1]
    starts, ends = [], []
    # each foreground pixel (i, j) is walked left->bottom->right->top; keep edges facing bg
    for neighbour, start, end in (
        (padded[1:-1, :-2], (0, 0), (0, 1)),
        (padded[2:, 1:-1], (0, 1), (1, 1)),
        (padded[1:-1, 2:], (1, 1), (1, 0)),
        (padded[:-2, 1:-1], (1, 0), (0, 0)),
    ):
        i, j = np.nonzero(fg & ~neighbour)
        starts.append(np.stack([j + start[0], i + start[1]], axis=1))
        ends.append(np.stack([j + end[0], i + end[1]], axis=1))
    outgoing: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (sx, sy), (ex, ey) in zip(np.concatenate(starts).tolist(), np.concatenate(ends).tolist()):
        outgoing.setdefault((sx, sy), []).append((ex, ey))
    loops = []
    while outgoing:
        first = min(outgoing)
        loop = [first]
        current, previous = first, None
        while True:
            options = outgoing[current]
            if len(options) == 1 or previous is None:
                nxt = options[0]
            else:
                dx, dy = current[0] - previous[0], current[1] - previous[1]
                left = (current[0] + dy, current[1] - dx)
                nxt = left if left in options else options[0]
            options.remove(nxt)
            if not options:
                del outgoing[current]
            previous, current = current, nxt
            if current == first:
                break
            loop.append(current)
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def _simplify(loop: np.ndarray) -> np.ndarray:
    """Drop the corners where an axis-aligned outline goes straight on."""
    incoming = loop - np.roll(loop, 1, axis=0)
    outgoing = np.roll(loop, -1, axis=0) - loop
    turning = (incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]) != 0
    return loop[turning]


def _signed_area(loop: np.ndarray) -> float:
    x, y = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _single_outline(mask: np.ndarray) -> np.ndarray | None:
    """The outline of a mask that is one 4-connected piece without holes, else None."""
    loops = _trace_loops(mask)
    if len(loops) != 1 or _signed_area(loops[0]) >= 0:
        return None
    return _simplify(loops[0])


def _hsv_to_rgb(hue: float, sat: float, val: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _object_colour(rng: np.random.Generator, used: list[np.ndarray]) -> np.ndarray:
    """A bright, saturated colour far from the (dark) background and from ``used``."""
    for _ in range(20):
        rgb = 255.0 * _hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.0))
        if all(np.linalg.norm(rgb - other) >= 90 for other in used):
            break
    return rgb


def _render_scene(rng: np.random.Generator, height: int, width: int, max_objects: int):
    """Draw one scene; return the RGB image, the label map and the instances."""
    side = min(height, width)
    low, high = max(_SIZE_RANGE[0] * side, _MIN_SIZE), _SIZE_RANGE[1] * side
    instance_map = np.zeros((height, width), np.int32)  # 0 background, k object k
    objects = []  # dicts with label, vertices, full mask, colour
    wanted = int(rng.integers(1, max_objects + 1))
    colours: list[np.ndarray] = []
    for _ in range(wanted):
        for _ in range(_PLACEMENT_TRIES):
            label = int(rng.integers(1, len(CLASSES) + 1))
            radius = rng.uniform(low, high) * _CIRCUMRADIUS[label]
            cx = rng.uniform(radius + 1, width - radius - 1)
            cy = rng.uniform(radius + 1, height - radius - 1)
            vertices = _shape_vertices(label, cx, cy, radius, rng.uniform(0, 2 * math.pi))
            mask = _rasterise(vertices, height, width)
            area = int(mask.sum())
            if area == 0:
                continue
            if any(
                (mask & obj['mask']).sum() > _MAX_OVERLAP * min(area, obj['area'])
                for obj in objects
            ):
                continue
            candidate = np.where(mask, len(objects) + 1, instance_map)
            acceptable = True
            for index, obj in enumerate(objects, start=1):
                if not (mask & obj['mask']).any():
                    continue
                visible = candidate == index
                if visible.sum() < _MIN_VISIBLE * obj['area'] or _single_outline(visible) is None:
                    acceptable = False
                    break
            if acceptable:
                objects.append(
                    dict(label=label, vertices=vertices, mask=mask, area=area, colour=None)
                )
                instance_map = candidate
                break
        else:
            break  # the image is crowded: keep the objects placed so far

    # a dark, low-saturation background with a gentle gradient and mild pixel noise
    grey = rng.uniform(25, 75)
    base = grey + rng.uniform(-10, 10, size=3)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(direction) * np.linspace(-1, 1, width)[None, :]) + (
        np.sin(direction) * np.linspace(-1, 1, height)[:, None]
    )
    image = base[None, None, :] + 12.0 * ramp[:, :, None]
    label_map = np.zeros((height, width), np.uint8)
    for index, obj in enumerate(objects, start=1):
        obj['colour'] = _object_colour(rng, colours)
        colours.append(obj['colour'])
        visible = instance_map == index
        image[visible] = obj['colour']
        label_map[visible] = obj['label']
    image = image + rng.normal(0.0, 4.0, size=image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    instances = []
    for index, obj in enumerate(objects, start=1):
        visible = instance_map == index
        ys, xs = np.nonzero(visible)
        if np.array_equal(visible, obj['mask']):
            polygon = obj['vertices']
        else:
            polygon = _single_outline(visible)
        instances.append(
            dict(
                category_id=obj['label'],
                bbox=[
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1),
                ],
                area=int(visible.sum()),
                segmentation=[[float(v) for v in polygon.reshape(-1)]],
                iscrowd=0,
            )
        )
    return image, label_map, instances


def _paths(root: str) -> dict:
    return dict(
        root=root,
        meta_file=osp.join(root, 'meta.json'),
        train_ann_file=osp.join(root, 'annotations', 'instances_train.json'),
        val_ann_file=osp.join(root, 'annotations', 'instances_val.json'),
        train_img_dir=osp.join(root, 'train'),
        val_img_dir=osp.join(root, 'val'),
        train_seg_dir=osp.join(root, 'seg', 'train'),
        val_seg_dir=osp.join(root, 'seg', 'val'),
    )


def _complete(paths: dict, args: dict) -> dict | None:
    """The stored metadata when ``root`` already holds exactly this dataset, else None."""
    try:
        with open(paths['meta_file']) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get('args') != args:
        return None
    for split, count in (('train', args['num_train']), ('val', args['num_val'])):
        if not osp.isfile(paths[f'{split}_ann_file']):
            return None
        for folder in (paths[f'{split}_img_dir'], paths[f'{split}_seg_dir']):
            if not all(osp.isfile(osp.join(folder, f'{i:06d}.png')) for i in range(count)):
                return None
    return meta


def write_shapes_dataset(
    root: str,
    num_train: int = 200,
    num_val: int = 50,
    image_size: int | tuple[int, int] = 128,
    seed: int = 0,
    max_objects: int = 3,
    overwrite: bool = False,
) -> dict:
    """Write the shapes detection/segmentation task under ``root``.

    Nothing is written when ``root/meta.json`` records the same arguments and every
    file is in place (unless ``overwrite``); otherwise the generated files are
    replaced, including stale images from an earlier, larger run.

    Args:
        root (str): Folder to write into (created when missing).
        num_train (int): Number of training images. Defaults to 200.
        num_val (int): Number of validation images. Defaults to 50.
        image_size (int | tuple[int, int]): Image side, or ``(height, width)``.
            Each side must be at least 32. Defaults to 128.
        seed (int): Seed of everything random. Defaults to 0.
        max_objects (int): Each image gets 1 to ``max_objects`` objects (fewer when
            a crowded image has no room left). Defaults to 3.
        overwrite (bool): Regenerate even when the files are up to date.
            Defaults to False.

    Returns:
        dict: The paths (``root``, ``meta_file``, ``train_ann_file``,
        ``val_ann_file``, ``train_img_dir``, ``val_img_dir``, ``train_seg_dir``,
        ``val_seg_dir``), the counts (``num_train``, ``num_val``,
        ``num_train_objects``, ``num_val_objects``), ``image_size`` as
        ``(height, width)`` and ``skipped`` (True when nothing was written).
    """
    height, width = _image_hw(image_size)
    args = dict(
        version=_FORMAT_VERSION,
        num_train=_check_count('num_train', num_train, 1),
        num_val=_check_count('num_val', num_val, 1),
        image_size=[height, width],
        seed=_check_count('seed', seed, 0),
        max_objects=_check_count('max_objects', max_objects, 1),
    )
    if osp.exists(root) and not osp.isdir(root):
        raise ValueError(f'root must be a folder, got the file {root!r}')
    paths = _paths(root)
    os.makedirs(root, exist_ok=True)
    # one writer at a time: two processes asked for the same folder (two demos started
    # together) wait for each other instead of deleting each other's files. The lock is
    # taken on the folder itself, so that no lock file is left among the data.
    folder = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        meta = None if overwrite else _complete(paths, args)
        skipped = meta is not None
        if meta is None:
            meta = dict(args=args, counts=_generate(paths, args))
    finally:
        os.close(folder)  # releases the lock
    return dict(
        paths,
        num_train=args['num_train'],
        num_val=args['num_val'],
        num_train_objects=meta['counts']['train'],
        num_val_objects=meta['counts']['val'],
        image_size=(height, width),
        skipped=skipped,
    )


def _generate(paths: dict, args: dict) -> dict:
    from PIL import Image

    height, width = args['image_size']
    if osp.isfile(paths['meta_file']):
        os.remove(paths['meta_file'])  # a half-written dataset is never mistaken for done
    os.makedirs(osp.dirname(paths['train_ann_file']), exist_ok=True)
    counts = {}
    for split_index, split in enumerate(('train', 'val')):
        for folder in (paths[f'{split}_img_dir'], paths[f'{split}_seg_dir']):
            os.makedirs(folder, exist_ok=True)
            for name in sorted(os.listdir(folder)):
                if _STEM.match(name):
                    os.remove(osp.join(folder, name))
        images, annotations = [], []
        for index in range(args[f'num_{split}']):
            rng = np.random.default_rng([args['seed'], split_index, index])
            image, label_map, instances = _render_scene(rng, height, width, args['max_objects'])
            file_name = f'{index:06d}.png'
            Image.fromarray(image).save(osp.join(paths[f'{split}_img_dir'], file_name))
            Image.fromarray(label_map).save(osp.join(paths[f'{split}_seg_dir'], file_name))
            image_id = index + 1
            images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
            for instance in instances:
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, **instance))
        coco = dict(
            info=dict(description=f'mmwst shapes ({split})', version=str(_FORMAT_VERSION)),
            licenses=[],
            images=images,
            annotations=annotations,
            categories=[
                dict(id=i, name=name, supercategory='shape')
                for i, name in enumerate(CLASSES, start=1)
            ],
        )
        with open(paths[f'{split}_ann_file'], 'w') as f:
            json.dump(coco, f)
        counts[split] = len(annotations)
    with open(paths['meta_file'], 'w') as f:
        json.dump(dict(args=args, counts=counts), f, indent=2)
    return counts
