"""Classification datasets generated from a seed, for pretraining a frozen host.

:class:`FractalDB` (iterated-function-system fractals, :mod:`.fractals`) and
:class:`ProceduralScenes` (composed procedural objects, :mod:`.procedural_scenes`)
render every image when the dataset is first initialised - a pure function of the
arguments, so the same seed gives the same bytes - and keep them in memory as one uint8
array. With ``cache_dir`` set, the array is also written there (``.npy``, named by a
hash of every argument and the generator version) and read back next time.

Images are handed to the pipeline as ``img`` arrays in BGR order, exactly like
``LoadImageFromFile`` would, so pretraining and every downstream config share one
preprocessing (``to_rgb=True``, mean = std = 127.5).
"""

from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

from ..registry import DATASETS
from .generation.fractals import FRACTALS_VERSION, perturb, render_fractals, sample_systems
from .generation.procedural_scenes import SCENES_VERSION, render_scenes, sample_programs

SPLITS = ('train', 'val')


class GeneratedClsDataset(BaseDataset):
    """Base of the generated datasets: arguments, splits, rendering, caching.

    Subclasses implement :meth:`_render_class`, which returns the images of one class.

    Args:
        num_classes (int): Number of categories.
        num_per_class (int): Images per category in this split.
        image_size (int): Image side in pixels. Defaults to 32.
        seed (int): Seed of the categories and the images. Defaults to 0.
        split (str): ``'train'`` or ``'val'``: the same categories, images rendered from
            independent seeds (held-out instances). Defaults to 'train'.
        cache_dir (str, optional): Folder for the rendered array. Defaults to None.
        pipeline (Sequence): Transforms applied to each sample.
        **kwargs: Other :class:`mmpretrain.datasets.BaseDataset` arguments.
    """

    version = 0
    name = 'generated'

    def __init__(
        self,
        num_classes: int,
        num_per_class: int,
        image_size: int = 32,
        seed: int = 0,
        split: str = 'train',
        cache_dir: str | None = None,
        pipeline: Sequence = (),
        **kwargs,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        for key, value, low in (
            ('num_classes', num_classes, 2),
            ('num_per_class', num_per_class, 1),
            ('image_size', image_size, 8),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f'{key} must be an integer >= {low}, got {value!r}')
        self.num_classes = num_classes
        self.num_per_class = num_per_class
        self.image_size = image_size
        self.seed = seed
        self.split = split
        self.cache_dir = cache_dir
        self.images: np.ndarray | None = None
        classes = [f'{self.name}_{i}' for i in range(num_classes)]
        kwargs.setdefault('serialize_data', False)  # images live in one array already
        super().__init__(ann_file='', pipeline=pipeline, metainfo=dict(classes=classes), **kwargs)

    # ---- what subclasses provide --------------------------------------------------------
    def _render_class(self, label: int, rng: np.random.Generator) -> np.ndarray:
        """(num_per_class, size, size, 3) uint8 RGB images of class ``label``."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Draw the categories (called once, before rendering)."""

    # ---- rendering and caching ---------------------------------------------------------
    def _arguments(self) -> dict:
        return dict(
            generator=self.name,
            version=self.version,
            num_classes=self.num_classes,
            num_per_class=self.num_per_class,
            image_size=self.image_size,
            seed=self.seed,
            split=self.split,
        )

    def _cache_path(self) -> str | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(self._arguments(), sort_keys=True).encode()).hexdigest()
        return osp.join(osp.expanduser(self.cache_dir), f'{self.name}_{self.split}_{key[:16]}.npy')

    def render(self) -> np.ndarray:
        """All images of the split, (num_classes * num_per_class, size, size, 3) RGB,
        ordered by class."""
        self._prepare()
        split_id = SPLITS.index(self.split)
        return np.concatenate(
            [
                self._render_class(c, np.random.default_rng([self.seed, split_id, c]))
                for c in range(self.num_classes)
            ]
        )

    def load_data_list(self) -> list[dict]:
        path = self._cache_path()
        expected = (self.num_classes * self.num_per_class, self.image_size, self.image_size, 3)
        images = None
        if path is not None and osp.isfile(path):
            images = np.load(path)
            if images.shape != expected or images.dtype != np.uint8:
                images = None  # a stale or foreign file: render again
        if images is None:
            if expected[0] >= 1000:  # only worth a line when it takes a while
                print_log(
                    f'rendering {expected[0]} {self.name} images ({self.split} split, '
                    f'{self.image_size} px, seed {self.seed})',
                    logger='current',
                )
            images = self.render()
            if path is not None:
                os.makedirs(osp.dirname(path), exist_ok=True)
                tmp = f'{path}.{os.getpid()}.tmp.npy'
                np.save(tmp, images)
                os.replace(tmp, path)
        self.images = np.ascontiguousarray(images[..., ::-1])  # BGR, like LoadImageFromFile
        labels = np.repeat(np.arange(self.num_classes), self.num_per_class)
        return [dict(sample_idx=i, gt_label=int(label)) for i, label in enumerate(labels)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = self.images[info['sample_idx']]
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info


@DATASETS.register_module()
class FractalDB(GeneratedClsDataset):
    """Fractal categories drawn from iterated function systems (FractalDB-style).

    Each class is one random contractive IFS (:func:`~.fractals.sample_systems`); its
    images render copies whose parameters are scaled by factors in ``1 +- variation``,
    with random framing and colours. Formula-driven supervised pretraining after
    Kataoka et al., "Pre-training without Natural Images" (ACCV 2020).

    Args:
        num_classes (int): Number of fractal categories. Defaults to 256.
        num_per_class (int): Images per category. Defaults to 400.
        variation (float): Relative perturbation of every IFS parameter within a
            category. Defaults to 0.1.
        **kwargs: :class:`GeneratedClsDataset` arguments (``image_size``, ``seed``,
            ``split``, ``cache_dir``, ``pipeline``...).

    Examples:
        >>> from mmwst.datasets import FractalDB
        >>> data = FractalDB(num_classes=4, num_per_class=3, image_size=16)
        >>> len(data), data[5]['img'].shape, data[5]['gt_label']
        (12, (16, 16, 3), 1)
    """

    version = FRACTALS_VERSION
    name = 'fractaldb'

    def __init__(
        self, num_classes: int = 256, num_per_class: int = 400, variation: float = 0.1, **kwargs
    ) -> None:
        if not 0 <= variation < 0.5:
            raise ValueError(f'variation must be in [0, 0.5), got {variation}')
        self.variation = variation
        self.systems: list[np.ndarray] = []
        super().__init__(num_classes, num_per_class, **kwargs)

    def _arguments(self) -> dict:
        return dict(super()._arguments(), variation=self.variation)

    def _prepare(self) -> None:
        self.systems = sample_systems(self.num_classes, self.seed)

    def _render_class(self, label: int, rng: np.random.Generator) -> np.ndarray:
        maps = perturb(self.systems[label], rng, self.num_per_class, self.variation)
        return render_fractals(maps, self.image_size, rng)


@DATASETS.register_module()
class ProceduralScenes(GeneratedClsDataset):
    """Scenes of procedural object categories (a contour and a surface program each).

    See :mod:`mmwst.datasets.generation.procedural_scenes`: the label is the category of the one
    to three textured objects in the scene; distractor blobs and the background carry
    no label information.

    Args:
        num_classes (int): Number of categories. Defaults to 256.
        num_per_class (int): Images per category. Defaults to 400.
        **kwargs: :class:`GeneratedClsDataset` arguments.

    Examples:
        >>> from mmwst.datasets import ProceduralScenes
        >>> data = ProceduralScenes(num_classes=4, num_per_class=3, image_size=16)
        >>> len(data), data[11]['img'].shape, data[11]['gt_label']
        (12, (16, 16, 3), 3)
    """

    version = SCENES_VERSION
    name = 'procedural_scenes'

    def __init__(self, num_classes: int = 256, num_per_class: int = 400, **kwargs) -> None:
        self.programs: dict[str, np.ndarray] = {}
        super().__init__(num_classes, num_per_class, **kwargs)

    def _prepare(self) -> None:
        self.programs = sample_programs(self.num_classes, self.seed)

    def _render_class(self, label: int, rng: np.random.Generator) -> np.ndarray:
        labels = np.full(self.num_per_class, label)
        return render_scenes(self.programs, labels, self.image_size, rng)
