"""Table rows for DoRA (weight-decomposed LoRA): on q and v, and on every Linear."""

from __future__ import annotations

import mmwst.models.tuners.dora  # noqa: F401  (registers DoRA)
from tests.models.tuners.table import Case, mlp_widths

RANK = 4


def _dora(kind: str, all_layers: bool) -> int:
    """Per target: A (r x d_in) + B (d_out x r) + the magnitude (d_out)."""
    total = 0
    for d, f1, f2 in mlp_widths(kind):
        shapes = [(d, d), (d, d)]  # q, v
        if all_layers:
            shapes += [(d, d), (d, d), (d, f1), (f2, d)]  # k, proj, fc1, fc2
        total += sum(RANK * (d_in + d_out) + d_out for d_in, d_out in shapes)
    return total


CASES = [
    Case('dora_qv', [dict(type='mmwst.DoRA', rank=RANK)], True, True, lambda k: _dora(k, False)),
    Case(
        'dora_all',
        [dict(type='mmwst.DoRA', rank=RANK, targets=('q', 'k', 'v', 'proj', 'fc1', 'fc2'))],
        True,
        True,
        lambda k: _dora(k, True),
    ),
]
