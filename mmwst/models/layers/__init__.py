from .bottleneck import Bottleneck
from .spectral import SpectralFilter2d
from .tunable import (
    TunableLinear,
    TunableMultiheadAttention,
    TunableWindowMSA,
    add_kv_fn,
    add_weight_fn,
    concat_kv,
    make_tunable_attention,
)
from .wavelet import DWT2d, IDWT2d, dwt2d, idwt2d

__all__ = [
    'Bottleneck',
    'DWT2d',
    'IDWT2d',
    'SpectralFilter2d',
    'TunableLinear',
    'TunableMultiheadAttention',
    'TunableWindowMSA',
    'add_kv_fn',
    'add_weight_fn',
    'concat_kv',
    'dwt2d',
    'idwt2d',
    'make_tunable_attention',
]
