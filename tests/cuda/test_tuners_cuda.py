"""Every tuner and the dense backbone on the GPU, against the CPU's fp32 result.

The subjects are every row of the shared tuner table (``tests/models/tuners/table*.py``,
collected by ``all_cases``: a new method's row is included automatically, and
``test_every_registered_tuner_has_a_table_row`` in ``tests/models/tuners/test_tuner_table.py``
fails, on any machine, for a registered tuner without one) on each host it runs on, plus
:class:`mmwst.models.DenseTunedViT` in its variants, all tiny. Each is built on the CPU
with its trainable parameters moved away from their initial values (seeded;
zero-initialised parts included, so that no tuner is an identity),
then copied to the device. The ViT hosts output the mean patch token (``avg_patch``), so
that every trainable parameter reaches the output (with the class token, FreqFit's filter
after the last block and WST's last branch step do not: their gradients are zero); the
CPU reference must give every trainable parameter a non-zero gradient.

Tolerances:

* fp32 on the device (TF32 off) vs fp32 on the CPU: outputs ``rtol = atol = 1e-4``;
  gradients of the trainable parameters ``rtol = 1e-4`` and ``atol = 1e-4 * scale``,
  where ``scale`` is the parameter's largest reference gradient entry, but at least 1e-3
  of the largest entry over all parameters (gradients that are zero in exact arithmetic,
  e.g. of an attention key bias, are rounding noise on both devices).
* bf16 autocast on the device vs fp32 on the CPU: each output within 3e-2 of the
  reference's norm (``||out - ref|| <= 3e-2 ||ref||``). bf16 keeps 8 significant bits
  (unit roundoff 2**-8 = 3.9e-3); bf16 autocast on the CPU errs by up to 1.0e-2 on the
  features and maps and 1.4e-2 on the logits (a random head's sums cancel); the GPU
  rounds elsewhere, hence the margin. Every gradient exists and is finite, and all of
  them together are within 2e-1 of the reference gradients' norm (a sanity bound: on
  the CPU the error is up to 7.6e-2).
* merged vs unmerged, both on the device in fp32 (TF32 off): ``rtol = atol = 1e-4``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from mmwst.models import DenseTunedViT
from tests.models.tuners.table import (
    SIZES,
    VIT_HOSTS,
    WithHead,
    all_cases,
    build_host,
    perturb_tuners,
)

pytestmark = pytest.mark.cuda

FP32_TOL = 1e-4
GRAD_SCALE_FLOOR = 1e-3
BF16_OUTPUT_TOL = 3e-2
BF16_GRAD_TOL = 2e-1
MERGE_TOL = 1e-4

DENSE_ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
DENSE_SIDE = dict(channels=(8, 16, 16, 32), num_heads=(1, 2, 2, 4))
DENSE_VARIANTS = {
    'wst+hst': dict(wst=dict(rank=2), hst=DENSE_SIDE),
    'wst+hst-beside-vit': dict(wst=dict(rank=2), hst=DENSE_SIDE, host_grad=False),
    'wst': dict(wst=dict(rank=2, wavelet='db2'), hst=None),
    'hst': dict(wst=None, hst=DENSE_SIDE),
    'wst+hst+lora': dict(wst=dict(rank=2), hst=DENSE_SIDE, tuners=[dict(type='mmwst.LoRA')]),
}


@dataclass
class Subject:
    """A tiny model to run on both devices and the input it reads."""

    model: nn.Module
    image: Tensor


def _image(shape: tuple[int, int], batch: int = 2, seed: int = 0) -> Tensor:
    return torch.randn(batch, 3, *shape, generator=torch.Generator().manual_seed(seed))


def _without_dropout(model: nn.Module) -> nn.Module:
    """Dropout off: the CPU and the device draw different masks, so a train-mode
    comparison needs a forward without them (Mona's adapters drop 10%)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def _table_subject(case, kind: str, init: bool = True) -> Subject:
    torch.manual_seed(0)
    options = dict(out_type='avg_patch') if kind in VIT_HOSTS else {}
    model = _without_dropout(WithHead(build_host(kind, copy.deepcopy(case.tuners), **options)))
    if init:
        model.backbone.init_weights()
        perturb_tuners(model, seed=1)
    return Subject(model, _image(SIZES[kind][1]))  # the non-square size: resized parts too


def _dense_subject(variant: str, init: bool = True) -> Subject:
    torch.manual_seed(0)
    model = DenseTunedViT(arch=DENSE_ARCH, img_size=64, patch_size=8, **DENSE_VARIANTS[variant])
    if init:
        model.init_weights()
        perturb_tuners(model, seed=1)
    return Subject(model, _image((64, 96)))


SUBJECTS = [
    *(
        pytest.param(case, kind, id=f'{case.id}-{kind}')
        for case in all_cases()
        for kind in case.hosts
    ),
    *(pytest.param(None, variant, id=f'dense-{variant}') for variant in DENSE_VARIANTS),
]
MERGEABLE = [
    pytest.param(case, kind, id=f'{case.id}-{kind}')
    for case in all_cases()
    if case.mergeable
    for kind in case.hosts
]


def _subject(case, kind: str, init: bool = True) -> Subject:
    """The model, initialised and perturbed (``init``), or as constructed."""
    if case is None:
        return _dense_subject(kind, init)
    return _table_subject(case, kind, init)


def _outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Every output: the backbone's features and the head's logits, or the dense maps."""
    if isinstance(model, WithHead):
        feats = list(model.backbone(x))  # one map, or the dense backbone's four
        pooled = [f.mean(dim=(2, 3)) if f.dim() == 4 else f for f in feats]
        return [*feats, model.head(torch.cat(pooled, dim=1))]
    return list(model(x))


def _run(model: nn.Module, x: Tensor, bf16: bool = False):
    """Forward (under bf16 autocast with ``bf16``) and backward of a fixed random
    projection of every output, in train mode.

    Returns the outputs (float32, on the CPU) and the trainable parameters' gradients
    (on the CPU; None where a parameter got none)."""
    model.train()
    model.zero_grad(set_to_none=True)
    device = x.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        outs = _outputs(model, x)
    gen = torch.Generator().manual_seed(2)
    weights = [torch.randn(o.shape, generator=gen).to(device) for o in outs]
    loss = sum((o.float() * w).sum() for o, w in zip(outs, weights))
    loss.backward()
    grads = {
        name: None if p.grad is None else p.grad.detach().float().cpu()
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    return [o.detach().float().cpu() for o in outs], grads


def _off_device(model: nn.Module, device: str) -> list[str]:
    where = torch.device(device).type
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, tensor in tensors if tensor.device.type != where]


def _on(model: nn.Module, device: str) -> nn.Module:
    """A copy of ``model`` on ``device``, checked to hold nothing elsewhere."""
    moved = copy.deepcopy(model).to(device)
    elsewhere = _off_device(moved, device)
    assert not elsewhere, f'left off {device}: {elsewhere}'
    return moved


def _relative_error(value: Tensor, reference: Tensor) -> float:
    return float((value - reference).norm() / reference.norm().clamp_min(1e-12))


@pytest.mark.parametrize('case, kind', SUBJECTS)
def test_init_weights_on_the_device(case, kind, device):
    """As in a runner: the model moves to the device first, then initialises there."""
    subject = _subject(case, kind, init=False)
    model = subject.model.to(device)
    (model if case is None else model.backbone).init_weights()
    assert not _off_device(model, device), _off_device(model, device)
    outs, grads = _run(model, subject.image.to(device))
    assert all(torch.isfinite(out).all() for out in outs)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize('case, kind', SUBJECTS)
def test_fp32_forward_and_backward_match_the_cpu(case, kind, device, no_tf32):
    subject = _subject(case, kind)
    moved = _on(subject.model, device)
    expected, expected_grads = _run(subject.model, subject.image)
    outs, grads = _run(moved, subject.image.to(device))

    assert len(outs) == len(expected)
    for out, ref in zip(outs, expected):
        assert out.shape == ref.shape and torch.isfinite(out).all()
        torch.testing.assert_close(out, ref, rtol=FP32_TOL, atol=FP32_TOL)
    assert grads.keys() == expected_grads.keys() and grads
    floor = GRAD_SCALE_FLOOR * max(float(g.abs().max()) for g in expected_grads.values())
    for name, grad in grads.items():
        ref = expected_grads[name]
        assert grad is not None and ref is not None, f'{name}: no gradient'
        assert ref.any(), f'{name}: zero gradient on the CPU, the comparison says nothing'
        assert torch.isfinite(grad).all(), f'{name}: gradient not finite'
        scale = max(float(ref.abs().max()), floor)
        torch.testing.assert_close(
            grad, ref, rtol=FP32_TOL, atol=FP32_TOL * scale, msg=lambda m, n=name: f'{n}: {m}'
        )


@pytest.mark.parametrize('case, kind', SUBJECTS)
def test_bf16_autocast_forward_and_backward_stay_near_the_cpu(case, kind, device):
    subject = _subject(case, kind)
    moved = _on(subject.model, device)
    expected, expected_grads = _run(subject.model, subject.image)
    outs, grads = _run(moved, subject.image.to(device), bf16=True)

    for index, (out, ref) in enumerate(zip(outs, expected)):
        assert out.shape == ref.shape and torch.isfinite(out).all()
        error = _relative_error(out, ref)
        assert error <= BF16_OUTPUT_TOL, f'output {index}: relative error {error:.3g}'
    for name, grad in grads.items():
        assert grad is not None, f'{name}: no gradient'
        assert torch.isfinite(grad).all(), f'{name}: gradient not finite'
    error = _relative_error(
        torch.cat([g.flatten() for g in grads.values()]),
        torch.cat([g.flatten() for g in expected_grads.values()]),
    )
    assert error <= BF16_GRAD_TOL, f'gradients: relative error {error:.3g}'


@pytest.mark.parametrize('case, kind', MERGEABLE)
def test_merged_equals_unmerged_on_the_device(case, kind, device, no_tf32):
    subject = _table_subject(case, kind)
    model = _on(subject.model.backbone, device).eval()
    x = subject.image.to(device)
    with torch.no_grad():
        expected = model(x)[0]
        model.merge_tuners()
        merged = model(x)[0]
        assert all(t.merged for t in model.tuners)
        model.unmerge_tuners()
        restored = model(x)[0]
    where = torch.device(device).type
    assert all(p.device.type == where for p in model.parameters()), 'merge left the device'
    assert merged.device == expected.device
    torch.testing.assert_close(merged, expected, rtol=MERGE_TOL, atol=MERGE_TOL)
    torch.testing.assert_close(restored, expected, rtol=MERGE_TOL, atol=MERGE_TOL)
