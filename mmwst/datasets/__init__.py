from .digits import write_digits_vtab
from .fgvc import FGVC, FGVC_DATASETS
from .mini_vtab import MINI_VTAB_GROUPS, MINI_VTAB_TASKS, write_mini_vtab
from .pretrain import FractalDB, GeneratedClsDataset, ProceduralScenes
from .shapes import shapes_metainfo, write_shapes_dataset
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
