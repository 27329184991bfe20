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


@pytest.mark.parametrize(
    'filter_type,grid', [('complex', (4, 4)), ('real', (4, 4)), ('complex', (5, 6))]
)
def test_a_position_has_torch_fft_gradients(filter_type, grid):
    """The gradients of a position (the filter's own backward, the update added after
    the prefix with the tokens' gradient passed whole) equal autograd's through the
    plain torch.fft form, for the tokens (prefix and patches) and every parameter; on a
    (5, 6) grid the filter is resized from (4, 4) first."""
    freqfit = _model([dict(type='mmwst.FreqFit', filter_type=filter_type)]).tuners[0]
    freqfit = freqfit.double()
    layer, num_prefix = freqfit.filters[1], 2
    tokens = torch.randn(2, num_prefix + grid[0] * grid[1], 32, dtype=torch.float64)
    tokens.requires_grad_()
    ctx = TokenContext(image=torch.empty(0), patch_resolution=grid, num_prefix=num_prefix)
    out = freqfit.before_block(1, tokens, ctx)
    kernel = _kernel(layer) if grid == (4, 4) else _resized(_kernel(layer), grid)
    expected = _direct(tokens, kernel, layer.gamma, layer.beta, num_prefix, grid)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    inputs = (tokens, layer.weight, layer.gamma, layer.beta)
    for ours, theirs in zip(
        torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)
    ):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize('length', [16, 15])
def test_a_1d_position_has_torch_fft_gradients(length):
    from mmwst.models.layers import SpectralFilter1d

    torch.manual_seed(0)
    layer = SpectralFilter1d(6, length).double()
    x = torch.randn(2, length, 6, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    spectrum = torch.fft.rfft(x, dim=1, norm='ortho') * _kernel(layer)
    expected = x + torch.fft.irfft(spectrum, n=length, dim=1, norm='ortho')
    grad = torch.randn_like(out)
    inputs = (x, layer.weight)
    for ours, theirs in zip(
        torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)
    ):
        torch.testing.assert_close(ours, theirs)


def test_the_tokens_gradient_passes_a_position_whole():
    """``_AddAfter``: adding the filter's update after the prefix costs its backward
    nothing in float32 - the tokens' gradient is the output's, the update's a view of
    it - where a concatenation of the prefix and the updated patches fills and adds
    full-size copies."""
    from mmwst.models.tuners.freqfit import _AddAfter
    from tools.benchmarking.ops import count_ops

    x = torch.randn(2, 7, 4, requires_grad=True)
    update = torch.randn(2, 5, 4, requires_grad=True)
    out = _AddAfter.apply(x, update, 2)
    torch.testing.assert_close(out, torch.cat([x[:, :2], x[:, 2:] + update], 1), rtol=0, atol=0)
    grad = torch.randn_like(out)
    grads = []
    assert count_ops(lambda: grads.extend(torch.autograd.grad(out, (x, update), grad)))[0] == 0
    assert torch.equal(grads[0], grad) and torch.equal(grads[1], grad[:, 2:])
    # a bf16 stream: the sum in float32, rounded once; the update's gradient in float32
    low = _AddAfter.apply(x.bfloat16(), update, 2)
    assert low.dtype == torch.bfloat16
    assert torch.equal(low[:, 2:], (x.bfloat16()[:, 2:].float() + update).bfloat16())
    (gx,) = torch.autograd.grad(low, update, grad.bfloat16())
    assert gx.dtype == torch.float32


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
    with pytest.raises(
        UnsupportedHostError, match="FreqFit runs on vit or sam hosts.*'swin' host.*Swin"
    ):
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


# ---- the 1-D form (released for MoCo v3, MAE and CLIP hosts and with prompts) -------------
def _dft_filter_1d(tokens, kernel):
    """``X + irfft(rfft(X) K)`` along the tokens, written with explicit DFT sums (cosines
    and sines, no FFT): the spectrum's bins ``k = 0 .. N // 2``, their Hermitian mirror
    ``N - k`` for the inverse, the imaginary parts of DC and (even N) Nyquist ignored."""
    x = tokens.double()
    B, N, C = x.shape
    n = torch.arange(N, dtype=torch.float64)
    k = torch.arange(N // 2 + 1, dtype=torch.float64)
    angle = 2 * torch.pi * k[:, None] * n[None, :] / N  # (bins, N)
    re = torch.einsum('kn,bnc->bkc', torch.cos(angle), x) / N**0.5
    im = -torch.einsum('kn,bnc->bkc', torch.sin(angle), x) / N**0.5
    kernel = kernel.to(torch.complex128)
    fre = re * kernel.real - im * kernel.imag  # (re + i im) (Kr + i Ki)
    fim = re * kernel.imag + im * kernel.real
    weight = torch.full((N // 2 + 1,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if N % 2 == 0:
        weight[-1] = 1.0
    fim = fim.clone()
    fim[:, 0] = 0
    if N % 2 == 0:
        fim[:, -1] = 0
    back = torch.einsum('k,kn,bkc->bnc', weight, torch.cos(angle), fre)
    back -= torch.einsum('k,kn,bkc->bnc', weight, torch.sin(angle), fim)
    return (x + back / N**0.5).to(tokens.dtype)


@pytest.mark.parametrize('length', [16, 15])
def test_1d_filter_is_the_dft_written_out(length):
    from mmwst.models.layers import SpectralFilter1d

    torch.manual_seed(0)
    layer = SpectralFilter1d(6, length)
    assert tuple(layer.weight.shape) == (length // 2 + 1, 6, 2)
    x = torch.randn(2, length, 6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _dft_filter_1d(x, _kernel(layer)))


def _by_hand_1d(model, image, num_prompts=0):
    """The tiny ViT with FreqFit 1-D after VPT-deep, written out: before block i the
    tokens after the class token ([prompts; patches]) are filtered by K_i, the prompts
    having been replaced first; K_L right after the last block, prompts included; then
    the prompts go, and the patch mean goes through the final norm."""
    vpt = model.tuners[0] if num_prompts else None
    freqfit = model.tuners[-1]
    captured = {}
    hook = model.layers[0].register_forward_pre_hook(lambda m, a: captured.update(x=a[0]))
    model(image)
    hook.remove()
    x = captured['x']  # the input of block 0, to check the rebuilt one against
    B = image.shape[0]
    tokens = model.patch_embed(image)[0]
    tokens = torch.cat([model.cls_token.expand(B, -1, -1), tokens], dim=1) + model.pos_embed
    for i, layer in enumerate(model.layers):
        if num_prompts:
            prompts = vpt.prompts[i].expand(B, -1, -1)  # no dropout
            tokens = torch.cat(
                [tokens[:, :1], prompts, tokens[:, 1 + (num_prompts if i else 0) :]], 1
            )
        rest = _dft_filter_1d(tokens[:, 1:], _kernel(freqfit.filters[i]))
        tokens = torch.cat([tokens[:, :1], rest], dim=1)
        if i == 0:
            torch.testing.assert_close(tokens, x)
        tokens = layer(tokens)
    rest = _dft_filter_1d(tokens[:, 1:], _kernel(freqfit.filters[-1]))
    patches = rest[:, num_prompts:]
    return model.ln1(patches.mean(dim=1))


@pytest.mark.parametrize('num_prompts', [0, 3])
def test_1d_form_equals_the_released_forward_written_out(num_prompts):
    tuners = [dict(type='mmwst.FreqFit', mode='1d', extra_tokens=num_prompts)]
    if num_prompts:
        tuners.insert(0, dict(type='mmwst.VPT', num_prompts=num_prompts, deep=True))
    model = _model(tuners, out_type='avg_patch')
    assert [f.length for f in model.tuners[-1].filters] == [16 + num_prompts] * 5
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(image)[0], _by_hand_1d(model, image, num_prompts))


def test_1d_form_refuses_a_sequence_it_was_not_built_for():
    tuners = [
        dict(type='mmwst.VPT', num_prompts=3, deep=True),
        dict(type='mmwst.FreqFit', mode='1d'),
    ]
    model = _model(tuners)
    with pytest.raises(ValueError, match='built for 16 tokens .* gets 19; set extra_tokens=3'):
        model(torch.randn(1, 3, 32, 32))
    model = _model([dict(type='mmwst.FreqFit', mode='1d')])
    assert model(torch.randn(1, 3, 40, 56))[0].shape == (1, 32)  # other sizes: resized


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        (dict(mode='3d'), 'mode must be one of'),
        (dict(extra_tokens=10), 'sizes the 1-D filter'),
        (dict(mode='1d', extra_tokens=-1), 'non-negative integer'),
    ],
)
def test_1d_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model([dict(type='mmwst.FreqFit', **kwargs)])


def test_1d_filters_of_another_length_load_and_are_kept():
    from mmwst.models.layers import SpectralFilter1d

    trained, other = SpectralFilter1d(4, 20), SpectralFilter1d(4, 12)
    other.load_state_dict(trained.state_dict())
    assert torch.equal(other.weight, trained.weight) and other.length == 20
    x = torch.randn(1, 12, 4)
    with torch.no_grad():
        torch.testing.assert_close(other(x), trained(x))


def test_1d_configs_count_as_released():
    """MAE host: LoRA + 13 x 99 x 768 x 2; VPT-deep (10 prompts): 12 x 10 x 768 prompts
    + 13 x 104 x 768 x 2; SSF + the 2-D filters."""
    filters_1d = (LAYERS + 1) * (196 // 2 + 1) * D * 2
    assert filters_1d == 1_976_832
    assert _count('lora-freqfit-1d_vit-b16-mae_vtab-1k.py') == LORA_ALL + filters_1d == 3_303_936
    prompts = LAYERS * 10 * D
    with_prompts = (LAYERS + 1) * (206 // 2 + 1) * D * 2
    assert _count('vpt-deep-freqfit-1d_vit-b16_vtab-1k.py') == prompts + with_prompts == 2_168_832
    ssf = LAYERS * 2 * (3 * D + D + HIDDEN + D + 2 * D) + 2 * D + 2 * D
    assert _count('ssf-freqfit_vit-b16_vtab-1k.py') == ssf + FREQFIT_COMPLEX == 2_462_208
