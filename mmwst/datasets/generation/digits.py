"""A small real image-classification task that needs no download.

scikit-learn ships the UCI handwritten-digits images (1,797 grey 8x8 images of the
digits 0-9) inside its package. :func:`write_digits_vtab` writes them out in the
VTAB-1k extracted layout that mmwst's VTAB configs read:

    <root>/<task>/images/00000.png ...
    <root>/<task>/train800.txt  val200.txt  train800val200.txt  test.txt
    (each line: "<image path relative to the task folder> <label>")

1,000 images (a seeded, class-balanced-in-expectation shuffle) form
train800 + val200 = train800val200, exactly like a VTAB-1k task; the remaining 797
are the test split. Images are upsampled to ``size`` x ``size`` RGB PNGs.
"""

from __future__ import annotations

import os
import os.path as osp

import numpy as np

SPLITS = ('train800', 'val200', 'train800val200', 'test')


def write_digits_vtab(
    root: str, task: str = 'digits', size: int = 32, seed: int = 0, overwrite: bool = False
) -> str:
    """Write the digits task under ``root/task`` and return that folder.

    Does nothing when all four list files already exist (unless ``overwrite``).
    """
    if size < 8:
        raise ValueError(f'size must be at least 8 (the source images are 8x8), got {size}')
    task_dir = osp.join(root, task)
    if not overwrite and all(osp.isfile(osp.join(task_dir, f'{s}.txt')) for s in SPLITS):
        return task_dir
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a test requirement
        raise ImportError(
            'writing the digits task needs scikit-learn (pip install scikit-learn)'
        ) from err
    from PIL import Image

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().clip(0, 255).astype(np.uint8)  # (N, 8, 8)
    labels = digits.target.astype(int)
    order = np.random.default_rng(seed).permutation(len(labels))
    os.makedirs(osp.join(task_dir, 'images'), exist_ok=True)
    names = []
    for idx in range(len(labels)):
        name = f'images/{idx:05d}.png'
        img = Image.fromarray(images[idx], mode='L').resize((size, size), Image.BILINEAR)
        img.convert('RGB').save(osp.join(task_dir, name))
        names.append(name)
    chosen = {
        'train800': order[:800],
        'val200': order[800:1000],
        'train800val200': order[:1000],
        'test': np.sort(order[1000:]),
    }
    for split, indices in chosen.items():
        with open(osp.join(task_dir, f'{split}.txt'), 'w') as f:
            f.writelines(f'{names[i]} {labels[i]}\n' for i in indices)
    return task_dir
