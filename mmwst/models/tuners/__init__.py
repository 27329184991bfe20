from .adapters import Adapter, AdaptFormer
from .base import BaseTuner, TokenContext
from .lora import LoRA
from .simple import BitFit, FullFineTune, LinearProbe, LNTune
from .ssf import SSF
from .vpt import VPT

__all__ = [
    'AdaptFormer',
    'Adapter',
    'BaseTuner',
    'BitFit',
    'FullFineTune',
    'LNTune',
    'LinearProbe',
    'LoRA',
    'SSF',
    'TokenContext',
    'VPT',
]
