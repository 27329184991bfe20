"""mini-VTAB: small, generated classification tasks in the VTAB-1k layout (no download).

Seven tasks mirror the three VTAB-1k groups:

* natural: ``digits`` (scikit-learn's handwritten digits, :mod:`mmwst.datasets.generation.digits`);
* specialized: ``land_cover`` (EuroSAT-like aerial tiles) and ``cell_patches`` (H&E-like
  tissue patches);
* structured: ``dsprites_loc`` / ``dsprites_ori`` (a sprite's x-position / orientation in
  16 bins) and ``clevr_count`` / ``clevr_dist`` (CLEVR-like scenes: the object count, the
  closest object's depth bin). They keep the class counts of the VTAB-1k tasks they are
  named after.

Labels: ``land_cover`` 0-7 = water, forest, crops, urban, highway, river, desert, snow;
``cell_patches`` 0-3 = stroma, normal, inflamed, tumour; ``dsprites_loc`` = bin of the
sprite centroid's x (0 leftmost); ``dsprites_ori`` = bin of the direction the heart's or
arrow's tip points in (0: 0-22.5 degrees counter-clockwise from "right"); ``clevr_count``
= objects - 3 (3-10 objects); ``clevr_dist`` = depth bin of the closest object (0 nearest,
bins of equal height in the image).

:func:`write_mini_vtab` writes each task as :class:`mmwst.datasets.VTAB1k` reads it::

    <root>/mini_vtab.json                 arguments, class counts and label histograms
    <root>/<task>/images/train_00000.png  RGB PNGs (test_00000.png ... for the test split)
    <root>/<task>/train800.txt  val200.txt  train800val200.txt  test.txt

``num_train`` training images (1,000 by default, as in VTAB-1k) form train800val200: the
first 80% are train800 and the other 20% val200 (800 / 200 by default). ``num_test``
more images, drawn from a separate random stream, form the test split. Labels are drawn
first (balanced in each of train800, val200 and test) and an image of that label is
rendered. ``digits`` keeps its own split (1,000 training and the 797 remaining test
images, whatever ``num_train`` and ``num_test``).

Scenes are drawn at 4x the output side and box-filtered down. The output depends only on
the arguments: each image has its own random stream, seeded from ``seed``, a fixed number
per task (a CRC-32 of its name), the split and the image index. An image that repeats an
earlier one of its task pixel for pixel is drawn again from its stream, so no test image
equals a training image.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import re
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from .render_specialized import (
    CELL_CLASSES,
    LAND_COVER_CLASSES,
    render_cell_patches,
    render_land_cover,
)
from .render_structured import (
    CLEVR_DIST_EDGES,
    CLEVR_MAX_OBJECTS,
    CLEVR_MIN_OBJECTS,
    SPRITE_BINS,
    render_clevr_count,
    render_clevr_dist,
    render_dsprites_loc,
    render_dsprites_ori,
)

#: Task -> number of classes.
MINI_VTAB_TASKS: dict[str, int] = {
    'digits': 10,
    'land_cover': len(LAND_COVER_CLASSES),
    'cell_patches': len(CELL_CLASSES),
    'dsprites_loc': SPRITE_BINS,
    'dsprites_ori': SPRITE_BINS,
    'clevr_count': CLEVR_MAX_OBJECTS - CLEVR_MIN_OBJECTS + 1,
    'clevr_dist': len(CLEVR_DIST_EDGES) - 1,
}
#: The VTAB-1k groups.
MINI_VTAB_GROUPS: dict[str, tuple[str, ...]] = {
    'natural': ('digits',),
    'specialized': ('land_cover', 'cell_patches'),
    'structured': ('dsprites_loc', 'dsprites_ori', 'clevr_count', 'clevr_dist'),
}
#: Task -> ``render(rng, label, size)`` returning a (size, size, 3) uint8 image.
RENDERERS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    'land_cover': render_land_cover,
    'cell_patches': render_cell_patches,
    'dsprites_loc': render_dsprites_loc,
    'dsprites_ori': render_dsprites_ori,
    'clevr_count': render_clevr_count,
    'clevr_dist': render_clevr_dist,
}
MINI_VTAB_VERSION = 1
SPLITS = ('train800', 'val200', 'train800val200', 'test')
META_FILE = 'mini_vtab.json'
_MIN_SIZE = 16
_MAX_TRAIN = 1000
_MIN_TRAIN = 20
_SPLIT_CODES = {'train': 0, 'test': 1}
_IMAGE_NAME = re.compile(r'^(train|test)_\d{5}\.png$')


def task_seed(task: str) -> int:
    """The fixed per-task number mixed into the seeds (CRC-32 of the name, not hash())."""
    return zlib.crc32(task.encode('utf-8'))


def train_val_sizes(num_train: int) -> tuple[int, int]:
    """Sizes of train800 and val200 for ``num_train`` training images (80% / 20%)."""
    first = int(round(0.8 * num_train))
    return first, num_train - first


def _balanced(rng: np.random.Generator, count: int, num_classes: int) -> np.ndarray:
    """``count`` labels, each class ``count // num_classes`` or one more times, shuffled."""
    return rng.permutation(np.arange(count) % num_classes)


def render_task_image(task: str, label: int, size: int, seed: int, split: str, index: int):
    """One image of a generated task, exactly as :func:`write_mini_vtab` renders it first.

    Args:
        task (str): A key of :data:`RENDERERS`.
        label (int): The class to draw.
        size (int): Output side in pixels.
        seed (int): The suite seed.
        split (str): ``'train'`` or ``'test'``.
        index (int): Image index in that split.

    Returns:
        np.ndarray: A (size, size, 3) uint8 image.
    """
    return RENDERERS[task](_image_rng(task, seed, split, index), int(label), size)


def _image_rng(task: str, seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, task_seed(task), _SPLIT_CODES[split], index])


def _labels(task: str, seed: int, num_train: int, num_test: int) -> dict[str, np.ndarray]:
    num_classes = MINI_VTAB_TASKS[task]
    first, second = train_val_sizes(num_train)
    train_rng = np.random.default_rng([seed, task_seed(task), _SPLIT_CODES['train']])
    test_rng = np.random.default_rng([seed, task_seed(task), _SPLIT_CODES['test']])
    train = np.concatenate(
        [_balanced(train_rng, first, num_classes), _balanced(train_rng, second, num_classes)]
    )
    return dict(train=train, test=_balanced(test_rng, num_test, num_classes))


def _write_task(
    task_dir: str, task: str, size: int, seed: int, num_train: int, num_test: int
) -> None:
    from PIL import Image

    image_dir = osp.join(task_dir, 'images')
    os.makedirs(image_dir, exist_ok=True)
    for name in os.listdir(image_dir):  # images of an earlier, possibly larger, write
        if _IMAGE_NAME.match(name):
            os.remove(osp.join(image_dir, name))
    render = RENDERERS[task]
    seen: set[bytes] = set()
    lines: dict[str, list[str]] = {}
    for split, labels in _labels(task, seed, num_train, num_test).items():
        lines[split] = []
        for index, label in enumerate(labels.tolist()):
            rng = _image_rng(task, seed, split, index)
            image = render(rng, label, size)
            for _ in range(100):  # keep every image distinct, within and across the splits
                if image.tobytes() not in seen:
                    break
                image = render(rng, label, size)
            seen.add(image.tobytes())
            name = f'images/{split}_{index:05d}.png'
            Image.fromarray(image, mode='RGB').save(osp.join(task_dir, name))
            lines[split].append(f'{name} {label}\n')
    first, _ = train_val_sizes(num_train)
    chosen = {
        'train800': lines['train'][:first],
        'val200': lines['train'][first:],
        'train800val200': lines['train'],
        'test': lines['test'],
    }
    for split, split_lines in chosen.items():
        with open(osp.join(task_dir, f'{split}.txt'), 'w') as f:
            f.writelines(split_lines)


def _histograms(task_dir: str, num_classes: int) -> dict[str, dict]:
    out = {}
    for split in SPLITS:
        with open(osp.join(task_dir, f'{split}.txt')) as f:
            labels = [int(line.rsplit(maxsplit=1)[1]) for line in f if line.strip()]
        counts = np.bincount(labels, minlength=num_classes)
        out[split] = dict(count=len(labels), histogram=counts.tolist())
    return out


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{name} must be an integer, got {value!r}')
    if value < low or (high is not None and value > high):
        bounds = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'{name} must be {bounds}, got {value}')
    return int(value)


def write_mini_vtab(
    root: str,
    tasks: Sequence[str] | None = None,
    size: int = 32,
    seed: int = 0,
    num_train: int = 1000,
    num_test: int = 500,
    overwrite: bool = False,
) -> list[str]:
    """Write the mini-VTAB tasks under ``root`` and return their folders.

    Args:
        root (str): The suite folder (one sub-folder per task, plus ``mini_vtab.json``).
        tasks (Sequence[str], optional): Tasks to write, keys of :data:`MINI_VTAB_TASKS`.
            Defaults to None (all of them).
        size (int): Image side in pixels (at least 16). Defaults to 32.
        seed (int): Seed of every random choice. Defaults to 0.
        num_train (int): Training images per task, 20 to 1,000; train800 holds the first
            80% and val200 the rest. Defaults to 1000 (800 + 200, as in VTAB-1k).
        num_test (int): Test images per task (at least 1). Defaults to 500.
        overwrite (bool): Rewrite tasks whose four list files exist already (those are
            skipped otherwise). Defaults to False.

    ``digits`` ignores ``num_train`` and ``num_test`` (1,000 + 797 images). ``mini_vtab.json``
    holds the arguments of the latest call and, per task, the size and seed it was written
    with (None when its files predate the description), its group, class count, and the
    image count and label histogram of each split (read back from the list files).

    Returns:
        list[str]: The task folders, in the order of ``tasks``.
    """
    tasks = list(MINI_VTAB_TASKS) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in MINI_VTAB_TASKS]
    if unknown:
        raise ValueError(f'unknown mini-VTAB task(s) {unknown}; expected {list(MINI_VTAB_TASKS)}')
    size = _check_int('size', size, _MIN_SIZE)
    seed = _check_int('seed', seed, 0)
    num_train = _check_int('num_train', num_train, _MIN_TRAIN, _MAX_TRAIN)
    num_test = _check_int('num_test', num_test, 1)
    from ..digits import write_digits_vtab

    meta_path = osp.join(root, META_FILE)
    entries: dict[str, dict] = {}
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            entries = json.load(f).get('tasks', {})
    folders = []
    for task in tasks:
        task_dir = osp.join(root, task)
        done = all(osp.isfile(osp.join(task_dir, f'{s}.txt')) for s in SPLITS)
        if overwrite or not done:
            if task == 'digits':
                write_digits_vtab(root, task, size=size, seed=seed, overwrite=True)
            else:
                _write_task(task_dir, task, size, seed, num_train, num_test)
            entries[task] = dict(size=size, seed=seed)
        entry = entries.setdefault(task, dict(size=None, seed=None))
        entry.update(
            group=next(g for g, names in MINI_VTAB_GROUPS.items() if task in names),
            num_classes=MINI_VTAB_TASKS[task],
            splits=_histograms(task_dir, MINI_VTAB_TASKS[task]),
        )
        folders.append(task_dir)
    meta = dict(
        generator='mmwst.datasets.generation.mini_vtab',
        version=MINI_VTAB_VERSION,
        size=size,
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        groups={g: list(names) for g, names in MINI_VTAB_GROUPS.items()},
        tasks={t: entries[t] for t in MINI_VTAB_TASKS if t in entries},
    )
    os.makedirs(root, exist_ok=True)
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write('\n')
    return folders


__all__ = [
    'MINI_VTAB_GROUPS',
    'MINI_VTAB_TASKS',
    'MINI_VTAB_VERSION',
    'RENDERERS',
    'render_task_image',
    'task_seed',
    'train_val_sizes',
    'write_mini_vtab',
]
