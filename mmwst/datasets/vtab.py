"""VTAB-1k in the extracted list format used by NOAH, SSF, RLRR, HST and WST."""

from __future__ import annotations

import json
import os.path as osp
from collections.abc import Sequence

from mmpretrain.datasets import BaseDataset

from ..registry import DATASETS
from .generation.mini_vtab import MINI_VTAB_TASKS
from .image_list import NamedImageErrors, check_image_file

#: The 19 tasks in the conventional order, with their class counts.
VTAB_TASKS: dict[str, int] = {
    'caltech101': 102, 'cifar': 100, 'dtd': 47, 'oxford_flowers102': 102,
    'oxford_iiit_pet': 37, 'svhn': 10, 'sun397': 397,
    'patch_camelyon': 2, 'eurosat': 10, 'resisc45': 45, 'diabetic_retinopathy': 5,
    'clevr_count': 8, 'clevr_dist': 6, 'dmlab': 6, 'kitti': 4, 'dsprites_loc': 16,
    'dsprites_ori': 16, 'smallnorb_azi': 18, 'smallnorb_ele': 9,
}  # yapf: disable
#: Natural = first 7, Specialized = next 4, Structured = last 8.
VTAB_GROUPS: dict[str, tuple[str, ...]] = {
    'natural': tuple(list(VTAB_TASKS)[:7]),
    'specialized': tuple(list(VTAB_TASKS)[7:11]),
    'structured': tuple(list(VTAB_TASKS)[11:]),
}
#: Other names the tasks go by (TFDS names, paper tables, folder names).
VTAB_ALIASES: dict[str, str] = {
    'cifar100': 'cifar',
    'cifar_100': 'cifar',
    'caltech': 'caltech101',
    'flowers102': 'oxford_flowers102',
    'oxford_flowers': 'oxford_flowers102',
    'flowers': 'oxford_flowers102',
    'pets': 'oxford_iiit_pet',
    'oxford_pet': 'oxford_iiit_pet',
    'sun': 'sun397',
    'camelyon': 'patch_camelyon',
    'pcam': 'patch_camelyon',
    'resisc': 'resisc45',
    'retinopathy': 'diabetic_retinopathy',
    'diabetic_retinopathy_detection': 'diabetic_retinopathy',
    'clevr_distance': 'clevr_dist',
    'dsprites_location': 'dsprites_loc',
    'dsprites_orientation': 'dsprites_ori',
    'smallnorb_azimuth': 'smallnorb_azi',
    'smallnorb_elevation': 'smallnorb_ele',
    'kitti_distance': 'kitti',
    'dmlab_frames': 'dmlab',
}
VTAB_SPLITS = ('train800', 'val200', 'train800val200', 'test')
#: Generated tasks in the same layout, not part of the 19: ``digits``
#: (tools/data/make_digits_vtab.py) and the mini-VTAB suite (tools/data/make_mini_vtab.py;
#: its structured tasks share the names and class counts of the VTAB-1k tasks they mimic).
EXTRA_TASKS: dict[str, int] = {'digits': 10, **MINI_VTAB_TASKS}


def canonical_task(task: str) -> str:
    """The canonical VTAB-1k task name for ``task`` or one of its aliases."""
    name = task.strip().lower().replace('-', '_')
    name = VTAB_ALIASES.get(name, name)
    if name not in VTAB_TASKS:
        raise ValueError(
            f'unknown VTAB-1k task {task!r}; expected one of '
            f'{", ".join(VTAB_TASKS)} (aliases such as cifar100 are accepted)'
        )
    return name


def vtab_num_classes(task: str) -> int:
    """Class count of a VTAB-1k task (aliases accepted) or of a generated task."""
    if task in EXTRA_TASKS:
        return EXTRA_TASKS[task]
    return VTAB_TASKS[canonical_task(task)]


def released_settings(table: str, task: str, **defaults) -> dict:
    """``defaults`` updated with the row of ``task`` in a released-settings table.

    Method configs keep the per-task VTAB-1k hyperparameters their paper's code released
    in a JSON file beside them (``configs/rlrr/released_vtab-1k.json``: task -> settings)
    and read it at parse time, so that choosing the task (``VTAB_TASK=dtd``) also applies
    that task's released settings::

        recipe = released_settings('{{ fileDirname }}/released_vtab-1k.json',
                                   '{{$VTAB_TASK:cifar}}', lr=3e-3, drop_path=0.1)

    A task without a row (a generated task, a task the paper did not tune) keeps the
    defaults. The result also holds ``task`` (the canonical name) and ``released``
    (whether the table has a row for it).

    Args:
        table: path of the JSON table.
        task: a VTAB-1k task or alias, or a generated task (:data:`EXTRA_TASKS`).
        **defaults: every setting the config reads, with its value for tasks without a
            row; a row may only set these.
    """
    if not osp.isfile(table):
        raise FileNotFoundError(f'released-settings table {table!r} does not exist')
    with open(table, encoding='utf-8') as f:
        rows = json.load(f)
    for name, row in rows.items():
        if name not in VTAB_TASKS:
            raise ValueError(f'{table}: {name!r} is not a canonical VTAB-1k task name')
        unknown = sorted(set(row) - set(defaults))
        if unknown:
            raise ValueError(
                f'{table}: the row of {name!r} sets {unknown}, which the config gives no '
                f'default for (it reads {sorted(defaults)})'
            )
    name = task if task in EXTRA_TASKS else canonical_task(task)
    recipe = dict(defaults, task=name, released=name in rows)
    recipe.update(rows.get(name, {}))
    return recipe


def read_label_list(
    path: str, num_classes: int, image_root: str, check_images: bool = True
) -> list[dict]:
    """Parse ``<relative image path> <label>`` lines, checking labels and files."""
    samples = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rel, label = line.rsplit(maxsplit=1)
                label = int(label)
            except ValueError:
                raise ValueError(
                    f'{path}:{lineno}: expected "<image path> <integer label>", got {line!r}'
                ) from None
            if not 0 <= label < num_classes:
                raise ValueError(
                    f'{path}:{lineno}: label {label} is outside [0, '
                    f'{num_classes}) for this task ({num_classes} classes)'
                )
            img_path = osp.join(image_root, rel)
            if check_images:
                check_image_file(img_path, f'{path}:{lineno}')
            samples.append(dict(img_path=img_path, gt_label=label, source=f'{path}:{lineno}'))
    if not samples:
        raise ValueError(f'{path} lists no image')
    return samples


@DATASETS.register_module()
class VTAB1k(NamedImageErrors, BaseDataset):
    """One VTAB-1k task in the extracted list format (no TensorFlow needed).

    Layout: ``<data_root>/<task>/`` holds the images and four list files
    ``train800.txt``, ``val200.txt``, ``train800val200.txt`` and ``test.txt``, each line
    ``<image path relative to the task folder> <integer label>``. Training uses
    ``train800val200`` (1,000 images); testing uses ``test``.

    Args:
        data_root (str): The VTAB-1k root folder (holding one folder per task).
        task (str): Task name, one of :data:`VTAB_TASKS` or an alias (``cifar100`` ->
            ``cifar``), a generated task of :data:`EXTRA_TASKS` (``digits``), or any
            other folder name when ``num_classes`` is given.
        split (str): ``'train800'``, ``'val200'``, ``'train800val200'`` or ``'test'``.
            Defaults to 'train800val200'.
        num_classes (int, optional): Needed only for tasks outside the 19 (e.g. the
            generated ``digits`` task). Defaults to None.
        check_images (bool): Verify that every listed image exists and is not empty.
            Defaults to True.
        **kwargs: Other :class:`mmpretrain.datasets.BaseDataset` arguments
            (``pipeline``, ``test_mode``, ``indices``...).

    Examples:
        >>> from mmwst.datasets import write_mini_vtab
        >>> _ = write_mini_vtab('mini-vtab', tasks=['dsprites_loc'], num_train=40, num_test=8)
        >>> train = VTAB1k('mini-vtab', 'dsprites_loc')  # train800val200
        >>> len(train), train.num_classes, len(VTAB1k('mini-vtab', 'dsprites_loc', split='test'))
        (40, 16, 8)
        >>> VTAB1k('data/vtab-1k', 'cifar100', split='test')  # doctest: +SKIP
    """

    def __init__(
        self,
        data_root: str,
        task: str,
        split: str = 'train800val200',
        num_classes: int | None = None,
        check_images: bool = True,
        pipeline: Sequence = (),
        **kwargs,
    ) -> None:
        if split not in VTAB_SPLITS:
            raise ValueError(f'unknown split {split!r}; expected one of {VTAB_SPLITS}')
        if num_classes is None:
            if task not in EXTRA_TASKS:
                task = canonical_task(task)
            num_classes = vtab_num_classes(task)
        # absolute, so that BaseDataset does not join a relative root onto itself again
        task_dir = osp.abspath(osp.join(osp.expanduser(data_root), task))
        if not osp.isdir(task_dir):
            raise FileNotFoundError(
                f'VTAB-1k task folder {task_dir} does not exist. Put the extracted VTAB-1k '
                f'data under {data_root}/<task>/ (images plus train800.txt, val200.txt, '
                'train800val200.txt and test.txt), or point the configs at the folder '
                'that holds the task folders: VTAB_ROOT=/path/to/vtab-1k (every mmwst VTAB '
                'config reads it; mini-VTAB: python tools/data/make_mini_vtab.py writes '
                'data/mini-vtab).'
            )
        ann_file = osp.join(task_dir, f'{split}.txt')
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'list file {ann_file} does not exist; a VTAB-1k task '
                f'folder holds {", ".join(s + ".txt" for s in VTAB_SPLITS)}'
            )
        self.task = task
        self.split = split
        self.num_classes = num_classes
        self.check_images = check_images
        classes = [f'{task}_{i}' for i in range(num_classes)]
        super().__init__(
            ann_file=ann_file,
            data_root=task_dir,
            pipeline=pipeline,
            metainfo=dict(classes=classes),
            **kwargs,
        )

    def load_data_list(self) -> list[dict]:
        return read_label_list(self.ann_file, self.num_classes, self.data_root, self.check_images)
