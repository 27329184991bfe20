from .host import BlockSpec, TunableHostMixin
from .swin import TunedSwinTransformer
from .vit import TunedVisionTransformer

__all__ = ['BlockSpec', 'TunableHostMixin', 'TunedSwinTransformer', 'TunedVisionTransformer']
