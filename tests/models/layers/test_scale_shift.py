"""layers.ScaleShiftPairs keeps nn.Module's interface: initialisers walk it with apply()."""

import torch
from torch import nn

from mmwst.models.layers.scale_shift import ScaleShiftPairs


def test_module_apply_walks_the_pairs():
    pairs = ScaleShiftPairs()
    pairs.add('fc', nn.Linear(4, 4), 4)
    seen = []
    pairs.apply(lambda m: seen.append(type(m).__name__))  # nn.Module.apply, not shadowed
    assert 'ScaleShiftPairs' in seen
    x = torch.randn(2, 4)
    with torch.no_grad():
        pairs.gamma['fc'].fill_(2.0)
        pairs.beta['fc'].fill_(1.0)
    torch.testing.assert_close(pairs.scale_shift('fc', x), 2 * x + 1)
    assert isinstance(pairs, nn.Module)
