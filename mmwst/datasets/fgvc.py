"""The five FGVC datasets in the VPT json format."""

from __future__ import annotations

import json
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

from mmpretrain.datasets import BaseDataset

from ..registry import DATASETS
from .image_list import NamedImageErrors, check_image_file


@dataclass(frozen=True)
class FGVCInfo:
    num_classes: int
    image_dir: str  # where the json keys are relative to, inside the dataset folder
    folder: str = ''  # the dataset folder's usual name under the FGVC root


#: The datasets, their class counts and where their images live (VPT's layout).
FGVC_DATASETS: dict[str, FGVCInfo] = {
    'cub': FGVCInfo(200, 'images', 'CUB_200_2011'),
    'nabirds': FGVCInfo(555, 'images', 'nabirds'),
    'oxford_flowers': FGVCInfo(102, '', 'OxfordFlower'),
    'stanford_dogs': FGVCInfo(120, 'Images', 'Stanford-dogs'),
    'stanford_cars': FGVCInfo(196, '', 'Stanford-cars'),
}
FGVC_ALIASES = {
    'cub_200_2011': 'cub',
    'cub200': 'cub',
    'cub-200-2011': 'cub',
    'birds': 'cub',
    'flowers': 'oxford_flowers',
    'oxfordflower': 'oxford_flowers',
    'oxford_flowers102': 'oxford_flowers',
    'dogs': 'stanford_dogs',
    'stanforddogs': 'stanford_dogs',
    'cars': 'stanford_cars',
    'stanfordcars': 'stanford_cars',
}
FGVC_SPLITS = ('train', 'val', 'trainval', 'test')


def canonical_fgvc(name: str) -> str:
    key = name.strip().lower().replace(' ', '_')
    key = FGVC_ALIASES.get(key, key)
    if key not in FGVC_DATASETS:
        raise ValueError(
            f'unknown FGVC dataset {name!r}; expected one of {", ".join(FGVC_DATASETS)}'
        )
    return key


def fgvc_num_classes(name: str) -> int:
    return FGVC_DATASETS[canonical_fgvc(name)].num_classes


def fgvc_folder(name: str) -> str:
    """The usual folder name of dataset ``name`` under the FGVC root."""
    return FGVC_DATASETS[canonical_fgvc(name)].folder


def _read_json(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'annotation file {path} does not exist; a VPT-format FGVC '
            'folder holds train.json, val.json and test.json'
        )
    with open(path) as f:
        anno = json.load(f)
    if not isinstance(anno, dict) or not anno:
        raise ValueError(
            f'{path} must map image paths to labels, e.g. {{"001.Black_footed_Albatross/x.jpg": 0}}'
        )
    return anno


@DATASETS.register_module()
class FGVC(NamedImageErrors, BaseDataset):
    """CUB-200-2011, NABirds, Oxford Flowers, Stanford Dogs or Stanford Cars (VPT json).

    Layout: ``<data_root>/`` holds ``train.json``, ``val.json`` and ``test.json``, each
    mapping an image path (relative to ``<data_root>/<image_dir>``) to its label.
    Labels are mapped to contiguous class indices in sorted order of the labels found in
    ``train.json`` and ``val.json`` (as VPT does), so 0- and 1-based files both work.

    Args:
        data_root (str): The dataset folder (e.g. ``data/fgvc/CUB_200_2011``).
        dataset (str): ``'cub'``, ``'nabirds'``, ``'oxford_flowers'``,
            ``'stanford_dogs'`` or ``'stanford_cars'`` (aliases accepted).
        split (str): ``'train'``, ``'val'``, ``'trainval'`` (both) or ``'test'``.
            Defaults to 'train'.
        image_dir (str, optional): Overrides the dataset's image folder. Defaults to
            None (VPT's layout).
        folder (str, optional): A sub-folder of ``data_root`` holding the dataset;
            ``'auto'`` uses the dataset's usual folder name (``CUB_200_2011``,
            ``nabirds``, ``OxfordFlower``, ``Stanford-dogs``, ``Stanford-cars``), so that
            ``data_root`` can be the root of all five. Defaults to None (``data_root``
            is the dataset folder itself).
        check_images (bool): Verify that every listed image exists and is not empty.
            Defaults to True.
        **kwargs: Other :class:`mmpretrain.datasets.BaseDataset` arguments.

    Examples:
        >>> from mmwst.datasets import FGVC_DATASETS
        >>> FGVC_DATASETS['stanford_dogs'].num_classes, FGVC_DATASETS['cub'].folder
        (120, 'CUB_200_2011')
        >>> data = FGVC('data/fgvc', 'cub', split='test', folder='auto')  # doctest: +SKIP
    """

    def __init__(
        self,
        data_root: str,
        dataset: str,
        split: str = 'train',
        image_dir: str | None = None,
        folder: str | None = None,
        check_images: bool = True,
        pipeline: Sequence = (),
        **kwargs,
    ) -> None:
        if split not in FGVC_SPLITS:
            raise ValueError(f'unknown split {split!r}; expected one of {FGVC_SPLITS}')
        self.dataset_name = canonical_fgvc(dataset)
        info = FGVC_DATASETS[self.dataset_name]
        # absolute, so that BaseDataset does not join a relative root onto itself again
        root = osp.abspath(osp.expanduser(data_root))
        if folder is not None:
            root = osp.join(root, info.folder if folder == 'auto' else folder)
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'FGVC folder {root} does not exist; put the {dataset} '
                'images and the VPT split files (train/val/test.json) '
                'there, or point the configs at the folder that holds the five FGVC '
                'folders: FGVC_ROOT=/path/to/fgvc (every mmwst FGVC config reads it)'
            )
        self.split = split
        self.image_root = osp.join(root, info.image_dir if image_dir is None else image_dir)
        self.check_images = check_images
        self.num_classes = info.num_classes
        classes = [f'{self.dataset_name}_{i}' for i in range(info.num_classes)]
        super().__init__(
            ann_file=osp.join(root, f'{split}.json'),
            data_root=root,
            pipeline=pipeline,
            metainfo=dict(classes=classes),
            **kwargs,
        )

    def _label_order(self) -> list:
        labels = set()
        for name in ('train', 'val'):
            labels.update(_read_json(osp.join(self.data_root, f'{name}.json')).values())
        order = sorted(labels)
        if len(order) != self.num_classes:
            raise ValueError(
                f'train.json and val.json of {self.data_root} hold {len(order)} '
                f'distinct labels; {self.dataset_name} has {self.num_classes}'
            )
        return order

    def load_data_list(self) -> list[dict]:
        names = ('train', 'val') if self.split == 'trainval' else (self.split,)
        index = {label: i for i, label in enumerate(self._label_order())}
        samples = []
        for name in names:
            path = osp.join(self.data_root, f'{name}.json')
            for rel, label in _read_json(path).items():
                if label not in index:
                    raise ValueError(
                        f'{path}: label {label!r} of {rel} is not among the '
                        f'{self.num_classes} labels of train.json/val.json'
                    )
                img_path = osp.join(self.image_root, rel)
                if self.check_images:
                    check_image_file(img_path, path)
                samples.append(dict(img_path=img_path, gt_label=index[label], source=path))
        return samples
