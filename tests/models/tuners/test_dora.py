"""DoRA's own math, recomputed by hand from the paper's Eq. 5."""

import torch
import torch.nn.functional as F

from mmwst.models.tuners import DoRA
from tests.models.tuners.table import Case, build_host, mlp_widths, perturb_tuners

# ---- the row in the shared tuner table (tests/models/tuners/table.py) ----
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


def _model(**kwargs):
    torch.manual_seed(0)
    model = build_host('vit', [dict(type='mmwst.DoRA', rank=4, **kwargs)]).eval()
    perturb_tuners(model)
    return model.double()


def _by_hand(weight, A, B, g, scaling):
    """m (W + s B A) / ||W + s B A||_rows with m = ||W||_rows (1 + g)."""
    direction = weight + scaling * B @ A
    row_norm = torch.sqrt((direction**2).sum(dim=1, keepdim=True))
    magnitude = torch.sqrt((weight**2).sum(dim=1, keepdim=True)) * (1 + g[:, None])
    return magnitude * direction / row_norm


def test_adapted_weights_equal_eq_5_slice_by_slice():
    model = _model(alpha=6.0)
    dora = model.tuners[0]
    assert isinstance(dora, DoRA) and dora.scaling == 1.5
    spec = model.blocks[1]
    x = torch.randn(2, 5, spec.dim, dtype=torch.float64)
    W, b = spec.qkv.weight, spec.qkv.bias
    dim = W.shape[0] // 3
    expected = []
    for s, name in enumerate(('q', 'k', 'v')):
        rows = W[s * dim : (s + 1) * dim]
        if name == 'k':  # not a target: unchanged
            expected.append(rows)
            continue
        key = f'1_{name}'
        A, B, g = dora.lora_A[key], dora.lora_B[key], dora.magnitude[key]
        expected.append(_by_hand(rows, A, B, g, 1.5))
    with torch.no_grad():
        torch.testing.assert_close(
            spec.qkv(x), F.linear(x, torch.cat(expected), b), rtol=1e-12, atol=1e-12
        )


def test_each_row_of_an_adapted_weight_has_the_learned_magnitude():
    model = _model(targets=('fc1',))
    dora = model.tuners[0]
    spec = model.blocks[0]
    with torch.no_grad():
        adapted, _ = dora._weight('0_fc1', spec.fc1.weight, None)
        norms = adapted.norm(dim=1)
        expected = spec.fc1.weight.norm(dim=1) * (1 + dora.magnitude['0_fc1'])
    torch.testing.assert_close(norms, expected, rtol=1e-12, atol=1e-12)


def test_identity_at_init_for_any_frozen_weights_loaded_later():
    """m is stored relative to ||W||: new frozen weights after construction keep W' = W."""
    torch.manual_seed(0)
    model = build_host('vit', [dict(type='mmwst.DoRA', rank=4, targets=('q', 'v', 'proj'))])
    model.eval()
    with torch.no_grad():
        for _, p in model.host_named_parameters():
            p.mul_(3.0).add_(0.1)  # as if another pretrained file were loaded
        plain = build_host('vit', [])
        with model.full_state_dict():
            host = {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
        plain.load_state_dict(host)
        x = torch.randn(2, 3, 32, 32)
        assert torch.equal(model(x)[0], plain.eval()(x)[0])  # bit for bit


def test_vit_b16_count():
    from mmwst.models.backbones import TunedVisionTransformer
    from mmwst.models.param_report import parameter_report

    model = TunedVisionTransformer(arch='b', img_size=224, tuners=[dict(type='mmwst.DoRA')])
    per_block = 2 * (8 * (768 + 768) + 768)
    assert parameter_report(model).trainable_without_head == 12 * per_block == 313_344
