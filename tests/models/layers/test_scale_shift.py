"""layers.scale_shift: ScaleShiftPairs keeps nn.Module's interface (initialisers walk it
with apply()), and channel_affine computes ``x * gamma + beta`` and its gradients."""

import pytest
import torch
from torch import nn

from mmwst.models.layers.scale_shift import ScaleShiftPairs, UnitMoments, channel_affine


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


def _plain_and_fused(x, gamma, beta):
    """Values and gradients of ``x * gamma + beta`` written out and from channel_affine."""
    moments = UnitMoments()
    moments.reserve(gamma.numel())
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.dtype)
    results = []
    for fused in (False, True):
        leaves = [t.detach().clone().requires_grad_() for t in (x, gamma, beta)]
        xx, g, b = leaves
        y = channel_affine(xx, g, b, moments) if fused else xx * g.to(x.dtype) + b.to(x.dtype)
        y.backward(grad)
        results.append((y.detach(), *(t.grad for t in leaves)))
    return results


@pytest.mark.parametrize(
    'shape',
    [
        (2, 5, 6),  # tokens (B, N, C)
        (6,),  # a single vector
        (2, 6, 3, 4),  # channels-first (B, C, h, w) seen channels-last: a transposed view
    ],
)
def test_channel_affine_equals_the_scale_and_shift_written_out(shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    if len(shape) == 4:
        x = x.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C), not contiguous
    gamma = torch.randn(x.shape[-1], generator=gen)
    beta = torch.randn(x.shape[-1], generator=gen)
    plain, fused = _plain_and_fused(x, gamma, beta)
    for a, b, what in zip(fused, plain, ('value', 'x grad', 'gamma grad', 'beta grad')):
        assert a.shape == b.shape, what
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=what)


def test_channel_affine_keeps_a_half_precision_input_and_float32_gradients():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, generator=gen).bfloat16()
    gamma, beta = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    plain, fused = _plain_and_fused(x, gamma, beta)
    assert fused[0].dtype == fused[1].dtype == torch.bfloat16
    assert fused[2].dtype == fused[3].dtype == torch.float32
    for a, b in zip(fused, plain):  # float32 parameters: at least bf16's precision
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)


def test_the_unit_moments_stay_out_of_checkpoints():
    pairs = ScaleShiftPairs()
    pairs.add('fc', nn.Linear(4, 6), 6)
    assert set(pairs.state_dict()) == {'gamma.fc', 'beta.fc'}
    assert pairs.moments.zeros.shape == pairs.moments.ones.shape == (6,)
    assert torch.all(pairs.moments.zeros == 0) and torch.all(pairs.moments.ones == 1)
