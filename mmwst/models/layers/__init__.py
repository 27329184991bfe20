from .bottleneck import Bottleneck
from .hst_side import HSTSide, SideState
from .norm import LayerNorm2d
from .roi_align import SeparableRoIAlign, build_separable_roi_extractor
from .scale_shift import ScaleShiftPairs
from .spectral import SpectralFilter1d, SpectralFilter2d
from .tunable import (
    TunableLinear,
    TunableMultiheadAttention,
    TunableWindowMSA,
    add_kv_fn,
    add_weight_fn,
    concat_kv,
    make_tunable_attention,
)
from .vit_levels import ViTFineLevels
from .wavelet import DWT2d, IDWT2d, dwt2d, idwt2d
from .wst_branch import WSTBranch
from .wst_pyramid import WSTPyramid

__all__ = [
    'Bottleneck',
    'DWT2d',
    'HSTSide',
    'IDWT2d',
    'LayerNorm2d',
    'ScaleShiftPairs',
    'SeparableRoIAlign',
    'SideState',
    'SpectralFilter1d',
    'SpectralFilter2d',
    'TunableLinear',
    'TunableMultiheadAttention',
    'TunableWindowMSA',
    'ViTFineLevels',
    'WSTBranch',
    'WSTPyramid',
    'add_kv_fn',
    'add_weight_fn',
    'build_separable_roi_extractor',
    'concat_kv',
    'dwt2d',
    'idwt2d',
    'make_tunable_attention',
]
