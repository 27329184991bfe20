"""RLRR's rows of the shared tuner table (see table.py)."""

import mmwst.models.tuners.rlrr  # noqa: F401  (registers mmwst.RLRR)
from tests.models.tuners.table import Case, blocks, final_dims, patch_dim


def rlrr_count(kind: str) -> int:
    """Trainable parameters of RLRR on the tiny host, from the block widths alone."""
    total = 0
    for d, h in blocks(kind):
        qkv = 3 * d + 3 * d + 3 * d  # s_out (3D) + three s_in (D each) + f (3D)
        proj = d + d + d
        fc1 = d + h + h
        fc2 = h + d + d
        ssf = 2 * (d + d)  # after norm1 and norm2
        total += qkv + proj + fc1 + fc2 + ssf
    return total + 2 * patch_dim(kind) + sum(2 * d for d in final_dims(kind))


CASES = [Case('rlrr', [dict(type='mmwst.RLRR')], False, True, rlrr_count)]
