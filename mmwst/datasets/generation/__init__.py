"""Generated data: the writers and renderers behind mmwst's procedural datasets.

Nothing here is downloaded; every image follows from a seed.

* :mod:`.shapes` - the shapes detection/segmentation demo set (COCO boxes and masks,
  segmentation maps), written by ``tools/data/make_shapes.py``;
* :mod:`.digits` and :mod:`.mini_vtab` - classification tasks in the VTAB-1k list layout
  (``tools/data/make_digits_vtab.py``, ``tools/data/make_mini_vtab.py``);
* :mod:`.fractals` and :mod:`.procedural_scenes` - the images of the pretraining
  datasets (:class:`~mmwst.datasets.FractalDB`, :class:`~mmwst.datasets.ProceduralScenes`).

The dataset classes that read these live one level up, in :mod:`mmwst.datasets`.
"""

from .digits import write_digits_vtab
from .mini_vtab import MINI_VTAB_GROUPS, MINI_VTAB_TASKS, write_mini_vtab
from .shapes import shapes_metainfo, write_shapes_dataset

__all__ = [
    'MINI_VTAB_GROUPS',
    'MINI_VTAB_TASKS',
    'shapes_metainfo',
    'write_digits_vtab',
    'write_mini_vtab',
    'write_shapes_dataset',
]
