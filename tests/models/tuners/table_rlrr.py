"""RLRR's rows of the shared tuner table (see table.py)."""

import mmwst.models.tuners.rlrr  # noqa: F401  (registers mmwst.RLRR)
from tests.models.tuners.table import Case, final_dims, mlp_widths, patch_dim


def rlrr_count(kind: str, swin_variant: str = 'release') -> int:
    """Trainable parameters of RLRR on the tiny host, from the layer widths alone.

    The ViT (and mmwst's own Swin layout): three s_in in qkv, SSF after the patch
    embedding. The released Swin layout: one s_in shared by q, k, v, no SSF after the
    patch embedding, and the patch-merging reduction (4C -> 2C) rescaled.
    """
    released_swin = kind == 'swin' and swin_variant == 'release'
    slices = 1 if released_swin else 3
    total = 0
    for d, f1, f2 in mlp_widths(kind):
        qkv = 3 * d + slices * d + 3 * d  # s_out (3D) + s_in (D per slice) + f (3D)
        proj = d + d + d
        fc1 = d + f1 + f1
        fc2 = f2 + d + d
        ssf = 2 * (d + d)  # after norm1 and norm2
        total += qkv + proj + fc1 + fc2 + ssf
    if released_swin:
        c = patch_dim(kind)  # the tiny Swin has one merging layer, after stage 0
        total += 4 * c + 2 * c + 2 * c  # s_in (4C), s_out and f (2C each)
    else:
        total += 2 * patch_dim(kind)
    return total + sum(2 * d for d in final_dims(kind))


CASES = [
    Case('rlrr', [dict(type='mmwst.RLRR')], False, True, rlrr_count),
    Case(
        'rlrr_swin_mmwst',
        [dict(type='mmwst.RLRR', swin_variant='mmwst')],
        False,
        True,
        lambda kind: rlrr_count(kind, 'mmwst'),
        hosts=('swin',),
    ),
]
