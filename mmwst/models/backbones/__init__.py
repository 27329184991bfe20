from ..tuners.base import BlockSpec
from .dense_vit import DenseTunedEVA02, DenseTunedViT, dense_backbone_for
from .eva02 import TunedEVA02
from .host import TunableHostMixin
from .sam import TunedSAMViT
from .swin import TunedSwinTransformer
from .vit import TunedVisionTransformer

__all__ = [
    'DenseTunedEVA02',
    'DenseTunedViT',
    'BlockSpec',
    'TunableHostMixin',
    'TunedEVA02',
    'TunedSAMViT',
    'TunedSwinTransformer',
    'TunedVisionTransformer',
    'dense_backbone_for',
]
