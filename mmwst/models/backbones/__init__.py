from ..tuners.base import BlockSpec
from .dense_vit import DenseTunedViT
from .host import TunableHostMixin
from .swin import TunedSwinTransformer
from .vit import TunedVisionTransformer

__all__ = [
    'DenseTunedViT',
    'BlockSpec',
    'TunableHostMixin',
    'TunedSwinTransformer',
    'TunedVisionTransformer',
]
