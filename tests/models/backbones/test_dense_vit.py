"""The dense backbone: frozen ViT + WST branch + HST side network -> 4-level pyramid."""

import copy

import pytest
import torch

from mmwst.models import DenseTunedViT
from mmwst.models.param_report import parameter_report
from tests.models.tuners.table_hst import hst_parts

ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)
SIDE = dict(channels=(16, 32, 48, 64), num_heads=(1, 2, 2, 4))
VARIANTS = {
    'wst+hst': dict(wst=dict(rank=2), hst=SIDE),
    'hst': dict(wst=None, hst=SIDE),
    'wst': dict(wst=dict(rank=2), hst=None),
}


def _build(variant, seed=0, patch_size=16, **kwargs):
    torch.manual_seed(seed)
    model = DenseTunedViT(
        arch=ARCH, img_size=64, patch_size=patch_size, **VARIANTS[variant], **kwargs
    )
    model.init_weights()
    return model


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize(
    'patch_size, size',
    [(16, (64, 64)), (16, (64, 96)), (16, (96, 32)), (8, (64, 40)), (14, (56, 84))],
)
def test_four_maps_at_strides_4_to_32(variant, patch_size, size):
    """Whatever the patch size; sides not divisible by a stride round up (ceil)."""
    model = _build(variant, patch_size=patch_size).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert len(outs) == 4
    assert model.out_strides == (4, 8, 16, 32)
    for out, stride, channels in zip(outs, model.out_strides, model.out_channels):
        expected = (2, channels, -(-size[0] // stride), -(-size[1] // stride))
        assert out.shape == expected, (stride, out.shape)


def test_wst_pyramid_at_patch_16_needs_no_resampling():
    """At p = 16 the four maps are the branch state, its 2x transposed convolution, the
    ViT map and its 2x max-pooling, untouched."""
    model = _build('wst').eval()
    pyramid = model.tuners[-1]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
        expected_up = pyramid.up(outs[1])
        expected_coarse = torch.nn.functional.max_pool2d(outs[2], 2, 2, ceil_mode=True)
    torch.testing.assert_close(outs[0], expected_up, rtol=0, atol=0)
    torch.testing.assert_close(outs[3], expected_coarse, rtol=0, atol=0)


@pytest.mark.parametrize('variant', VARIANTS)
def test_only_the_tuned_parts_learn_and_the_vit_stays_frozen(variant):
    model = _build(variant).train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    hst_norms = {id(p) for t in model.tuners for p in t.host_parameters(model)}
    for name, param in model.host_named_parameters():
        assert param.requires_grad == (id(param) in hst_norms), name
        assert (param.grad is not None) == param.requires_grad, name
    for name, param in model.tuners.named_parameters():
        assert param.grad is not None, name


def test_the_side_network_reads_the_wst_branch():
    model = _build('wst+hst').eval()
    assert hasattr(model.tuners[1], 'branch_bridges')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.tuners[0].patch_embed.weight.mul_(2.0)  # changes S_0 and every S_l
        after = model(x)
    assert not torch.allclose(before[0], after[0])  # stage 1 sees the branch
    assert not hasattr(_build('hst').tuners[0], 'branch_bridges')


def test_needs_at_least_one_part():
    with pytest.raises(ValueError, match='needs WST, HST or both'):
        DenseTunedViT(arch=ARCH, img_size=64, patch_size=16, wst=None, hst=None)


def test_adapter_only_checkpoint_round_trip(tmp_path):
    source = _build('wst+hst', seed=1)
    with source.full_state_dict():
        host = {k: v for k, v in source.state_dict().items() if not k.startswith('tuners.')}
    torch.save({'state_dict': host}, tmp_path / 'base.pth')
    model = _build('wst+hst', seed=2, pretrained=str(tmp_path / 'base.pth'))
    with torch.no_grad():
        for p in model.tuners.parameters():
            p.add_(0.01)
    state = model.state_dict()
    fresh = copy.deepcopy(_build('wst+hst', seed=3, pretrained=str(tmp_path / 'base.pth')))
    fresh.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64)
    model.eval(), fresh.eval()
    with torch.no_grad():
        for a, b in zip(model(x), fresh(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_vit_b16_count():
    model = DenseTunedViT(arch='b', img_size=224, patch_size=16)
    report = parameter_report(model)
    channels = [64, 128, 256, 384]
    side = sum(hst_parts(768, 12, channels).values())
    branch_bridges = sum(192 * c + c for c in channels)
    rows = {r.name: r.trainable for r in report.rows}
    assert rows['tuner 0: WST'] == 83_160
    assert rows['tuner 1: HST'] == side + branch_bridges == 10_564_672
    assert report.trainable_without_head == 83_160 + 10_564_672
