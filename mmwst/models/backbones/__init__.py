from ..tuners.base import BlockSpec
from .dense_vit import DenseTunedViT
from .eva02 import TunedEVA02
from .host import TunableHostMixin
from .sam import TunedSAMViT
from .swin import TunedSwinTransformer
from .vit import TunedVisionTransformer

__all__ = [
    'DenseTunedViT',
    'BlockSpec',
    'TunableHostMixin',
    'TunedEVA02',
    'TunedSAMViT',
    'TunedSwinTransformer',
    'TunedVisionTransformer',
]
