"""FreqFit's own math against direct torch.fft computations, its combinations, its counts."""

import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmwst.models.tuners.freqfit  # noqa: F401  (registers mmwst.FreqFit)
import mmwst.models.tuners.rlrr  # noqa: F401  (registers mmwst.RLRR)
from mmwst.models import TunedVisionTransformer
from mmwst.models.param_report import parameter_report
from mmwst.models.tuners import TokenContext
from mmwst.models.tuners.base import UnsupportedHostError
from tests.helpers import REPO
from tests.models.tuners.table import VIT_ARCH, build_host, perturb_tuners

D, HIDDEN, LAYERS, GRID = 768, 3072, 12, (14, 14)  # ViT-B/16 at 224
BINS = GRID[0] * (GRID[1] // 2 + 1)  # 14 x 8 rfft2 bins
FREQFIT_COMPLEX = (LAYERS + 1) * (BINS * D * 2 + 2 * D)
FREQFIT_REAL = (LAYERS + 1) * (BINS * D + 2 * D)
LORA_QV = LAYERS * 2 * 8 * (D + D)
LORA_ALL = LAYERS * 8 * (3 * (D + D) + (D + D) + (D + HIDDEN) + (HIDDEN + D))
RLRR = LAYERS * (4 * 3 * D + (D + 2 * HIDDEN) + (HIDDEN + 2 * D) + 4 * D) + 2 * D + 2 * D


def _model(tuners=None, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = build_host('vit', tuners or [dict(type='mmwst.FreqFit')], **kwargs).eval()
    perturb_tuners(model, seed)
    return model


def _kernel(layer):
    weight = layer.weight
    return torch.view_as_complex(weight) if layer.filter_type == 'complex' else weight


def _direct(tokens, kernel, gamma, beta, num_prefix, grid):
    """The FreqFit position written out with torch.fft: prefix tokens pass through."""
    B, _, C = tokens.shape
    h, w = grid
    patches = tokens[:, num_prefix:].reshape(B, h, w, C)  # (B, h*w, C) -> (B, h, w, C)
    spectrum = torch.fft.rfft2(patches, dim=(1, 2), norm='ortho')  # (B, h, w//2+1, C)
    filtered = torch.fft.irfft2(spectrum * kernel, s=(h, w), dim=(1, 2), norm='ortho')
    out = patches + filtered * gamma + beta
    return torch.cat([tokens[:, :num_prefix], out.reshape(B, h * w, C)], dim=1)


def _resized(kernel, grid):
    """Bilinear, corner-aligned resize of a (h0, w0//2+1, C) filter to ``grid``'s bins."""
    target = (grid[0], grid[1] // 2 + 1)
    parts = [kernel.real, kernel.imag] if kernel.is_complex() else [kernel]
    out = []
    for part in parts:  # (h0, b0, C) -> (1, C, h0, b0) -> (1, C, h, b) -> (h, b, C)
        part = part.permute(2, 0, 1).unsqueeze(0)
        part = F.interpolate(part, size=target, mode='bilinear', align_corners=True)
        out.append(part[0].permute(1, 2, 0))
    return torch.complex(*out) if kernel.is_complex() else out[0]


def test_one_filter_per_block_and_one_after_the_last():
    freqfit = _model().tuners[0]
    assert len(freqfit.filters) == VIT_ARCH['num_layers'] + 1
    for layer in freqfit.filters:
        assert layer.grid_size == (4, 4) and layer.weight.shape == (4, 3, 32, 2)


@pytest.mark.parametrize('filter_type', ['complex', 'real'])
def test_a_position_equals_torch_fft_on_the_patch_tokens(filter_type):
    freqfit = _model([dict(type='mmwst.FreqFit', filter_type=filter_type)]).tuners[0]
    grid, num_prefix = (4, 4), 3  # e.g. a class token and two prompts in front
    tokens = torch.randn(2, num_prefix + 16, 32)
    ctx = TokenContext(image=torch.empty(0), patch_resolution=grid, num_prefix=num_prefix)
    with torch.no_grad():
        for position in (0, 2):
            layer = freqfit.filters[position]
            out = freqfit.before_block(position, tokens, ctx)
            expected = _direct(tokens, _kernel(layer), layer.gamma, layer.beta, num_prefix, grid)
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
            assert torch.equal(out[:, :num_prefix], tokens[:, :num_prefix])
        last = freqfit.filters[-1]
        expected = _direct(tokens, _kernel(last), last.gamma, last.beta, num_prefix, grid)
        torch.testing.assert_close(freqfit.after_blocks(tokens, ctx), expected)


def test_filters_sit_before_every_block_and_after_the_last():
    model = _model()
    freqfit = model.tuners[0]
    outputs, inputs = {}, {}
    for i, layer in enumerate(model.layers):
        layer.register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0]))
        layer.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out))
    model.ln1.register_forward_pre_hook(lambda m, a: inputs.__setitem__('final', a[0]))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
        last = len(model.layers) - 1
        for i in range(1, last + 1):
            torch.testing.assert_close(inputs[i], freqfit._filter(i, outputs[i - 1], _ctx()))
        final = freqfit._filter(last + 1, outputs[last], _ctx())
        torch.testing.assert_close(inputs['final'], final)
        assert torch.equal(inputs['final'][:, 0], outputs[last][:, 0])  # cls untouched


def _ctx(grid=(4, 4)):
    return TokenContext(image=torch.empty(0), patch_resolution=grid, num_prefix=1)


def test_a_non_square_grid_resizes_the_filter_over_the_frequency_grid():
    model = _model()
    freqfit = model.tuners[0]
    grid = (4, 6)  # a 32 x 48 input: 6 // 2 + 1 = 4 bins instead of 3
    layer = freqfit.filters[1]
    kernel = _resized(_kernel(layer), grid)
    assert kernel.shape == (4, 4, 32)
    torch.testing.assert_close(layer.frequency_filter(grid), kernel)
    # corner-aligned: the DC and Nyquist columns keep the stored values
    torch.testing.assert_close(kernel[:, 0], _kernel(layer)[:, 0])
    torch.testing.assert_close(kernel[:, -1], _kernel(layer)[:, -1])
    tokens = torch.randn(2, 1 + 24, 32)
    with torch.no_grad():
        out = freqfit.before_block(1, tokens, _ctx(grid))
        expected = _direct(tokens, kernel, layer.gamma, layer.beta, 1, grid)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        assert model(torch.randn(2, 3, 32, 48))[0].shape == (2, 32)
    # at the default grid the stored filter is used as it is
    assert torch.equal(layer.frequency_filter((4, 4)), _kernel(layer))


def test_the_224_to_384_grid_change_on_the_tiny_host():
    """A 14 x 14 default grid run at 24 x 24, as ViT-B/16 going from 224 to 384 input."""
    torch.manual_seed(0)
    model = TunedVisionTransformer(
        arch=VIT_ARCH, img_size=112, patch_size=8, tuners=[dict(type='mmwst.FreqFit')]
    ).eval()
    freqfit = model.tuners[0]
    layer = freqfit.filters[0]
    assert layer.grid_size == (14, 14) and layer.weight.shape[:2] == (14, 8)
    kernel = _resized(_kernel(layer), (24, 24))
    assert kernel.shape == (24, 13, 32)
    tokens = torch.randn(1, 1 + 24 * 24, 32)
    with torch.no_grad():
        out = freqfit.before_block(0, tokens, _ctx((24, 24)))
        expected = _direct(tokens, kernel, layer.gamma, layer.beta, 1, (24, 24))
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        feat = model(torch.randn(1, 3, 192, 192))[0]
    assert feat.shape == (1, 32) and torch.isfinite(feat).all()


def test_swin_host_is_refused_with_the_reason():
    with pytest.raises(UnsupportedHostError, match="FreqFit runs on vit hosts.*'swin' host.*Swin"):
        build_host('swin', [dict(type='mmwst.FreqFit')])


def test_unknown_filter_type_is_refused():
    with pytest.raises(ValueError, match="one of \\('complex', 'real'\\), got 'imag'"):
        build_host('vit', [dict(type='mmwst.FreqFit', filter_type='imag')])


def test_combination_with_lora_trains_both():
    model = _model([dict(type='mmwst.LoRA', rank=2), dict(type='mmwst.FreqFit')]).train()
    lora, freqfit = model.tuners
    before = copy.deepcopy(model.tuners.state_dict())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(torch.randn(2, 3, 32, 32))[0]
    (out * torch.randn_like(out)).sum().backward()
    optimizer.step()
    after = model.tuners.state_dict()
    for prefix in ('0.lora_A.', '0.lora_B.', '1.filters.0.weight', '1.filters.3.gamma'):
        keys = [k for k in after if k.startswith(prefix)]
        assert keys and all(not torch.equal(after[k], before[k]) for k in keys), prefix
    assert not any(p.requires_grad for _, p in model.host_named_parameters())


# ---- the configs ------------------------------------------------------------------------
def _count(name: str, **tuner_override) -> int:
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'freqfit', name))
    cfg.model.backbone.pretrained = None
    if tuner_override:
        cfg.model.backbone.tuners[0].update(tuner_override)
    return parameter_report(MODELS.build(cfg.model)).trainable_without_head


def test_lora_freqfit_config_counts():
    assert _count('lora-freqfit_vit-b16_vtab-1k.py') == LORA_ALL + FREQFIT_COMPLEX == 3_583_488
    qv = _count('lora-freqfit_vit-b16_vtab-1k.py', targets=('q', 'v'))
    assert qv == LORA_QV + FREQFIT_COMPLEX == 294_912 + 2_256_384


def test_freqfit_real_and_rlrr_freqfit_config_counts():
    assert _count('freqfit-real_vit-b16_vtab-1k.py') == LORA_ALL + FREQFIT_REAL == 2_465_280
    assert _count('rlrr-freqfit_vit-b16_vtab-1k.py') == RLRR + FREQFIT_COMPLEX == 2_545_152


def test_filters_trained_at_one_size_load_into_a_host_built_for_another():
    """tools/test.py with another img_size used to drop the trained filters with a
    size-mismatch warning; they are kept and resized at run time, as in training."""
    import warnings

    from mmwst.models.backbones import TunedVisionTransformer

    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    tuners = [dict(type='mmwst.FreqFit')]
    torch.manual_seed(0)
    trained = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=tuners)
    with torch.no_grad():
        for p in trained.tuners.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    state = trained.state_dict()  # adapter-only: the frozen host is not in it
    with trained.full_state_dict():
        full = trained.state_dict()
    other = TunedVisionTransformer(arch=arch, img_size=48, patch_size=8, tuners=tuners)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no size-mismatch warning
        other.load_state_dict(full)
    for name, value in state.items():
        torch.testing.assert_close(other.state_dict()[name], value, rtol=0, atol=0)
    x = torch.randn(2, 3, 40, 56)  # a third size: both resize the same trained filters
    trained.eval(), other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x)[0], trained(x)[0], rtol=0, atol=0)
