from .fgvc import FGVC, FGVC_DATASETS
from .generation import (
    MINI_VTAB_GROUPS,
    MINI_VTAB_TASKS,
    shapes_metainfo,
    write_digits_vtab,
    write_mini_vtab,
    write_shapes_dataset,
)
from .pretrain import FractalDB, GeneratedClsDataset, ProceduralScenes
from .vtab import VTAB_GROUPS, VTAB_TASKS, VTAB1k, canonical_task

__all__ = [
    'FGVC',
    'FGVC_DATASETS',
    'FractalDB',
    'GeneratedClsDataset',
    'MINI_VTAB_GROUPS',
    'MINI_VTAB_TASKS',
    'ProceduralScenes',
    'VTAB1k',
    'VTAB_GROUPS',
    'VTAB_TASKS',
    'canonical_task',
    'shapes_metainfo',
    'write_digits_vtab',
    'write_mini_vtab',
    'write_shapes_dataset',
]
