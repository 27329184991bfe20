"""The invariants every tuner must satisfy, on a tiny ViT and a tiny Swin host."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper

from mmwst.engine import TunerOptimWrapperConstructor  # noqa: F401  (registers it)
from mmwst.models.backbones import DenseTunedViT
from mmwst.models.tuners import BaseTuner
from mmwst.registry import MODELS
from tests.models.tuners.table import (
    SIZES,
    WithHead,
    all_cases,
    assert_merge_round_trip,
    build_host,
    patch_size,
    perturb_tuners,
)

#: state-dict prefixes of the dense backbone's own trained parts
DENSE_PARTS = ('wst.', 'hst.', 'pyramid.')

PARAMS = [
    pytest.param(case, kind, id=f'{case.id}-{kind}') for case in all_cases() for kind in case.hosts
]


def test_every_registered_tuner_has_a_table_row():
    """Every tuner class registered in mmwst has a row in the table, so that the
    invariants below (and the GPU subset, tests/cuda/test_tuners_cuda.py) cover it."""
    registered = {
        name
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseTuner)
    }
    in_table = {t['type'].split('.')[-1] for case in all_cases() for t in case.tuners}
    assert registered and not registered - in_table, sorted(registered - in_table)


def test_every_tuner_is_exported_and_registered():
    """The package exports each tuner class of its modules (found, not listed), and
    exactly those are the tuners in the registry."""
    import mmwst.models.tuners as package

    exported = {
        name
        for name in package.__all__
        if isinstance(getattr(package, name), type)
        and issubclass(getattr(package, name), BaseTuner)
        and name != 'BaseTuner'
    }
    registered = {
        name
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseTuner)
    }
    assert exported == registered and 'Mona' in exported


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
    assert_merge_round_trip(model, _image(kind), _output)


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


def _resized_pos_embed(pos: torch.Tensor, src: tuple, dst: tuple) -> torch.Tensor:
    """A position embedding for the ``dst`` patch grid, as the hosts resize theirs at run
    time: the grid resampled bicubically (half-pixel centres), the leading non-patch
    rows kept. ViTs: ``(1, prefix + h * w, C)``; SAM: ``(1, h, w, C)``."""
    if pos.dim() == 4:
        image = F.interpolate(pos.permute(0, 3, 1, 2), size=dst, mode='bicubic')
        return image.permute(0, 2, 3, 1)
    prefix = pos.shape[1] - src[0] * src[1]
    image = pos[:, prefix:].reshape(1, *src, -1).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=dst, mode='bicubic', align_corners=False)
    return torch.cat([pos[:, :prefix], image.flatten(2).transpose(1, 2)], dim=1)


def _same_weights_for(state: dict, target: dict, src: tuple, dst: tuple) -> dict | None:
    """``state`` (a model built for the ``src`` patch grid) for a model built for ``dst``:
    the host's position tables resized as the host resizes them at run time (the
    position embedding; the relative-position tables of SAM's global blocks, linearly).
    None when another weight differs in shape: FreqFit's filters are sized by the grid
    the model is built for, so no model at another size holds the same weights (their
    resize at another grid is checked against an independent resampling in
    test_freqfit.py)."""
    out = {}
    for key, value in state.items():
        shape = target[key].shape
        name = key.rsplit('.', 1)[-1]
        if value.shape == shape:
            out[key] = value
        elif name == 'pos_embed':
            out[key] = _resized_pos_embed(value, src, dst)
        elif name in ('rel_pos_h', 'rel_pos_w'):  # (2 n - 1, C)
            out[key] = F.interpolate(value.T[None], size=shape[0], mode='linear')[0].T
        else:
            return None
    return out


@pytest.mark.parametrize('case, kind', PARAMS)
def test_trains_at_the_grid_of_384_px(case, kind):
    """On the patch grid a base model has at 384 x 384 px - 24 x 24 for a ViT of patch
    16, 96 x 96 for Swin's patch 4 - training works and the model computes what the same
    model built for that grid computes with the same weights (its position tables resized
    once, by the test): a host or tuner that kept anything from the grid it was built for,
    or resized it wrongly, would differ."""
    grid = 384 // 4 if kind == 'swin' else 384 // 16
    side = grid * patch_size(kind)  # the tiny hosts' patches are 8, 14 and 4 px
    model = WithHead(_build(case, kind)).train()
    perturb_tuners(model)  # the tuners act: not an identity
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)  # the same dropout draws (if any) in both models
    out = model(x)
    out.sum().backward()
    assert out.shape == (1, 5)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    extra = dict(rope_ref_grid=(4, 4)) if kind == 'eva02' else {}  # RoPE scaled as built
    at_size = build_host(kind, copy.deepcopy(case.tuners), img_size=side, **case.extra, **extra)
    twin = WithHead(at_size).train()
    step = patch_size(kind)
    src = tuple(s // step for s in SIZES[kind][0])
    with model.backbone.full_state_dict(), twin.backbone.full_state_dict():
        state = _same_weights_for(model.state_dict(), twin.state_dict(), src, (side // step,) * 2)
        if state is None:
            assert any(t['type'] == 'mmwst.FreqFit' for t in case.tuners), case.id
            return
        twin.load_state_dict(state)
    torch.manual_seed(1)
    with torch.no_grad():
        expected = twin(x)
    # the same operations on the same numbers: equal up to float32 rounding
    torch.testing.assert_close(out.detach(), expected, rtol=1e-5, atol=1e-5)


#: the largest relative difference (L2) allowed between the bf16-autocast and the
#: float32 outputs: bf16 keeps 8 bits of mantissa (0.4 % per rounding), accumulated over
#: the tiny hosts' 4 blocks and the head
BF16_RTOL = 5e-2


def _matmul_output_dtypes(backbone) -> tuple[list, list]:
    """Record the output dtype of every block's qkv, proj, fc1 and fc2 (the frozen host's
    matrix products) before any tuner's hook on them sees it."""
    seen, handles = [], []
    for spec in backbone.blocks:
        for layer in (spec.qkv, spec.proj, spec.fc1, spec.fc2):
            hook = layer.register_forward_hook(
                lambda module, args, output: seen.append(output.dtype), prepend=True
            )
            handles.append(hook)
    return seen, handles


@pytest.mark.parametrize('case, kind', PARAMS)
def test_bf16_autocast_trains(case, kind):
    """Under bf16 autocast the host's matrix products run in bfloat16 (every block's
    qkv, proj, fc1, fc2), the output stays within BF16_RTOL of the float32 forward and
    differs from it (autocast ran), and training gets finite gradients."""
    model = WithHead(_build(case, kind)).train()
    perturb_tuners(model)
    x = _image(kind)
    torch.manual_seed(1)
    with torch.no_grad():
        reference = model(x)  # float32
    seen, handles = _matmul_output_dtypes(model.backbone)
    torch.manual_seed(1)
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) >= 4 * len(model.backbone.blocks)
    assert set(seen) == {torch.bfloat16}, seen
    assert out.dtype == torch.bfloat16
    relative = ((out.float() - reference).norm() / reference.norm()).item()
    assert 0 < relative < BF16_RTOL, relative
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in model.parameters()
        if p.requires_grad
    )
