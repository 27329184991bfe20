"""The invariants every tuner must satisfy, on a tiny ViT and a tiny Swin host."""

from __future__ import annotations

import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmwst.engine import TunerOptimWrapperConstructor  # noqa: F401  (registers it)
from mmwst.models.backbones import DenseTunedViT
from tests.models.tuners.table import (
    SIZES,
    WithHead,
    all_cases,
    build_host,
    patch_size,
    perturb_tuners,
)

#: state-dict prefixes of the dense backbone's own trained parts
DENSE_PARTS = ('wst.', 'side.', 'pyramid.')

PARAMS = [
    pytest.param(case, kind, id=f'{case.id}-{kind}') for case in all_cases() for kind in case.hosts
]


def _image(kind: str, size_index: int = 0, batch: int = 2, seed: int = 0) -> torch.Tensor:
    h, w = SIZES[kind][size_index]
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _build(case, kind, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = build_host(kind, copy.deepcopy(case.tuners), **case.extra, **kwargs)
    model.init_weights()
    return model.eval()


def _host_state(model) -> dict:
    """The host's weights: neither the tuners' nor the dense backbone's own parts."""
    with model.full_state_dict():
        state = model.state_dict()
    return {k: v for k, v in state.items() if not k.startswith(('tuners.', *DENSE_PARTS))}


def _own_count(model) -> int:
    """What the model trains besides its tuners (the dense backbone's parts), from its
    formula."""
    return model.dense_param_count() if isinstance(model, DenseTunedViT) else 0


def _frozen_state(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}


def _output(model, x):
    """Every output map (one for a plain host, four for the dense backbone), flattened."""
    return torch.cat([out.flatten(1) for out in model(x)], dim=1)


@pytest.mark.parametrize('case, kind', PARAMS)
def test_exactly_the_expected_parameters_train(case, kind):
    model = _build(case, kind)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == case.count(kind)
    # each method states its count formula in its own file; it must agree
    assert sum(t.param_count(model) for t in model.tuners) + _own_count(model) == trainable
    for tuner in model.tuners:
        assert all(p.requires_grad for p in tuner.parameters())
    # a combination is mergeable / identity at init only if every tuner in it is
    assert all(type(t).mergeable for t in model.tuners) is case.mergeable
    assert all(type(t).identity_at_init for t in model.tuners) is case.identity
    model.train()  # must not unfreeze anything
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable


@pytest.mark.parametrize('case, kind', PARAMS)
def test_identity_at_init_reproduces_the_frozen_model(case, kind):
    model = _build(case, kind)
    plain = build_host(kind, [], **case.extra).eval()
    with model.full_state_dict():
        host_state = {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
    plain.load_state_dict(host_state, strict=True)  # the dense parts too: tuners differ only
    x = _image(kind)
    with torch.no_grad():
        same = torch.equal(_output(model, x), _output(plain, x))
    assert same is case.identity


@pytest.mark.parametrize('case, kind', PARAMS)
def test_gradients_reach_trainable_and_never_frozen(case, kind):
    model = WithHead(_build(case, kind)).train()
    perturb_tuners(model)
    out = model(_image(kind))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, name


@pytest.mark.parametrize('case, kind', PARAMS)
def test_optimizer_holds_trainables_only_and_frozen_stays_bit_identical(case, kind):
    model = WithHead(_build(case, kind)).train()
    frozen = _frozen_state(model)
    wrapper = build_optim_wrapper(
        model,
        dict(
            constructor='mmwst.TunerOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
            paramwise_cfg=dict(norm_decay_mult=0.0),
        ),
    )
    in_optimizer = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for step in range(3):
        out = model(_image(kind, seed=step))
        wrapper.update_params((out * torch.linspace(-1, 1, out.shape[-1])).mean())
    for name, value in _frozen_state(model).items():
        assert torch.equal(value, frozen[name]), name
    moved = [
        n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])
    ]
    assert moved and all(n.startswith('head.') for n in moved) == (case.id == 'linear_probe')


@pytest.mark.parametrize('case, kind', PARAMS)
def test_adapter_only_checkpoint_round_trips_with_pretrained_base(case, kind, tmp_path):
    source = _build(case, kind, seed=1)
    pretrained = tmp_path / 'base.pth'
    torch.save({'state_dict': _host_state(source)}, pretrained)

    model = _build(case, kind, seed=2, pretrained=str(pretrained))  # loads the base
    perturb_tuners(model, seed=3)
    state = model.state_dict()
    frozen = set(model.frozen_host_keys())
    assert not frozen & set(state), 'frozen weights leaked into the checkpoint'
    x = _image(kind)
    with torch.no_grad():
        expected = _output(model, x)

    torch.manual_seed(4)
    fresh = build_host(
        kind, copy.deepcopy(case.tuners), **case.extra, pretrained=str(pretrained)
    ).eval()
    fresh.load_state_dict(state, strict=True)  # frozen part filled from `pretrained`
    with torch.no_grad():
        torch.testing.assert_close(_output(fresh, x), expected, rtol=0, atol=0)


@pytest.mark.parametrize('case, kind', PARAMS)
def test_merge_equals_unmerged_and_unmerge_restores(case, kind):
    model = _build(case, kind)
    perturb_tuners(model)
    if not case.mergeable:
        with pytest.raises(ValueError, match='not mergeable'):
            model.merge_tuners()
        return
    with model.full_state_dict():
        weights = copy.deepcopy(model.state_dict())
    x = _image(kind)
    with torch.no_grad():
        expected = _output(model, x)
        model.merge_tuners()
        torch.testing.assert_close(_output(model, x), expected, rtol=1e-5, atol=1e-5)
        model.unmerge_tuners()
        torch.testing.assert_close(_output(model, x), expected, rtol=1e-5, atol=1e-5)
    with model.full_state_dict():
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, weights[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('case, kind', PARAMS)
def test_init_weights_twice_changes_nothing(case, kind):
    model = _build(case, kind)
    with model.full_state_dict():
        first = copy.deepcopy(model.state_dict())
    model.init_weights()
    with model.full_state_dict():
        for key, value in model.state_dict().items():
            assert torch.equal(value, first[key]), key


@pytest.mark.parametrize('case, kind', PARAMS)
def test_works_at_two_input_sizes(case, kind):
    model = _build(case, kind)
    for index in range(len(SIZES[kind])):
        out = _output(model, _image(kind, index))
        assert out.shape[0] == 2 and torch.isfinite(out).all()


@pytest.mark.parametrize('case, kind', PARAMS)
def test_deepcopy_keeps_hooks_bound_to_the_copy(case, kind):
    model = _build(case, kind)
    perturb_tuners(model)
    twin = copy.deepcopy(model)
    x = _image(kind)
    with torch.no_grad():
        torch.testing.assert_close(_output(twin, x), _output(model, x), rtol=0, atol=0)
        for p in twin.parameters():
            if p.requires_grad:
                p.zero_()
        changed = not torch.equal(_output(twin, x), _output(model, x))
    assert changed or case.id == 'linear_probe'  # the only one that trains nothing here


@pytest.mark.parametrize('case, kind', PARAMS)
def test_moves_between_dtypes_with_the_module(case, kind):
    model = _build(case, kind)
    perturb_tuners(model)
    x = _image(kind)
    with torch.no_grad():
        expected = _output(model, x)
        model.to(torch.float64)
        out = _output(model, x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('case, kind', PARAMS)
def test_trains_at_384x384(case, kind):
    side = -(-384 // patch_size(kind)) * patch_size(kind)  # 392 at patch 14
    model = WithHead(_build(case, kind)).train()
    out = model(torch.randn(1, 3, side, side))
    out.sum().backward()
    assert out.shape == (1, 5)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('case, kind', PARAMS)
def test_bf16_autocast_trains(case, kind):
    model = WithHead(_build(case, kind)).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(_image(kind))
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in model.parameters()
        if p.requires_grad
    )
