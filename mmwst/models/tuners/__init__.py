from .adapters import Adapter, AdaptFormer
from .base import BaseTuner, BlockSpec, HostSpec, TokenContext, UnsupportedHostError
from .dora import DoRA
from .freqfit import FreqFit
from .hst import HST
from .lora import LoRA
from .mona import Mona
from .patt import PATT
from .prefix import PrefixTuning
from .rlrr import RLRR
from .simple import BitFit, FullFineTune, LinearProbe, LNTune
from .ssf import SSF
from .vpt import VPT
from .wst import WST

__all__ = [
    'HST',
    'PATT',
    'RLRR',
    'SSF',
    'VPT',
    'WST',
    'AdaptFormer',
    'Adapter',
    'BaseTuner',
    'BitFit',
    'BlockSpec',
    'DoRA',
    'FreqFit',
    'FullFineTune',
    'HostSpec',
    'LNTune',
    'LinearProbe',
    'LoRA',
    'Mona',
    'PrefixTuning',
    'TokenContext',
    'UnsupportedHostError',
]
