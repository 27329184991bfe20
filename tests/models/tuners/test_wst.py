"""WST's own math, checked against a direct re-computation from the paper's formulas."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmwst.models.tuners.wst  # noqa: F401  (registers mmwst.WST)
from mmwst.models.backbones import TunedVisionTransformer
from mmwst.models.param_report import parameter_report
from mmwst.models.tuners.base import UnsupportedHostError
from mmwst.models.tuners.wst import WST
from tests.helpers import REPO
from tests.models.tuners.table import VIT_ARCH, build_host, perturb_tuners

CONFIG = f'{REPO}/configs/wst/vit-b16_vtab-1k.py'


class _Recorder:
    """Records WST's branch states ``[S_0 .. S_L]`` (spatial) and block outputs
    ``[W_0 ..]`` (as tokens) of the last forward pass, by wrapping its branch's steps;
    also the sub-bands ``T_0`` the branch starts from."""

    def __init__(self, branch) -> None:
        self.record = dict(states=[], outputs=[])
        embed, step = branch.embed, branch.step

        def record_embed(image):
            bands = embed(image)
            self.record = dict(states=[branch.patch_embed(image)], outputs=[], bands=bands)
            return bands

        def record_step(index, bands, patches, weights=None):
            out = step(index, bands, patches, weights)  # W_l (B, h, w, D), also T_{l+1}
            self.record['outputs'].append(out.reshape(out.shape[0], -1, out.shape[-1]))
            self.record['states'].append(branch.spatial(out))  # S_{l+1} = IDWT(W_l)
            return out

        branch.embed, branch.step = record_embed, record_step


def _model(scale=1.0, wavelet='haar', dtype=torch.float64, extra=()):
    torch.manual_seed(0)
    tuners = [*extra, dict(type='mmwst.WST', scale=scale, wavelet=wavelet)]
    model = build_host('vit', tuners, out_type='avg_patch').eval()
    perturb_tuners(model)
    return model.to(dtype), _Recorder(model.tuners[-1].branch)


def _image(h=32, w=32, dtype=torch.float64):
    return torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1)).to(dtype)


def _record_blocks(model):
    """Inputs and outputs of every block, captured with forward (pre-)hooks."""
    inputs, outputs = [], []
    for layer in model.layers:
        layer.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
        layer.register_forward_hook(lambda m, args, out: outputs.append(out))
    return inputs, outputs


def _haar_dwt(s):
    """(B, C, 2h, 2w) -> (B, 4C, h, w) from the 2x2 formulas, bands [LL|LH|HL|HH]."""
    a, b = s[..., 0::2, 0::2], s[..., 0::2, 1::2]
    c, d = s[..., 1::2, 0::2], s[..., 1::2, 1::2]
    bands = [(a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2]
    return torch.cat(bands, dim=1)


def _haar_idwt(t):
    """(B, 4C, h, w) -> (B, C, 2h, 2w): the inverse of the 2x2 formulas."""
    ll, lh, hl, hh = t.chunk(4, dim=1)
    batch, channels, h, w = ll.shape
    out = ll.new_empty(batch, channels, 2 * h, 2 * w)
    out[..., 0::2, 0::2] = (ll + lh + hl + hh) / 2  # a
    out[..., 0::2, 1::2] = (ll + lh - hl - hh) / 2  # b
    out[..., 1::2, 0::2] = (ll - lh + hl - hh) / 2  # c
    out[..., 1::2, 1::2] = (ll - lh - hl + hh) / 2  # d
    return out


def _tokens(grid):
    """(B, D, h, w) -> (B, h * w, D), row-major over the grid."""
    return grid.permute(0, 2, 3, 1).reshape(grid.shape[0], -1, grid.shape[1])


def _grid(tokens, h, w):
    """(B, h * w, D) -> (B, D, h, w)."""
    return tokens.reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)


def test_vit_b16_config_builds_with_the_papers_count():
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    report = parameter_report(model)
    conv, block = 3 * 192 * 8 * 8 + 192, 768 * 2 + 2 + 2 * 768 + 768
    assert (conv, block) == (37_056, 3_842)
    assert report.trainable_without_head == conv + 12 * block == 83_160
    backbone = model.backbone
    assert backbone.out_type == 'avg_patch' and cfg.model.backbone.drop_path_rate == 0.0
    (wst,) = backbone.tuners
    assert isinstance(wst, WST) and (wst.rank, wst.scale, wst.wavelet) == (2, 10.0, 'haar')
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.optim_wrapper.paramwise_cfg.bias_decay_mult == 0.0


def test_initialisation():
    model = build_host('vit', [dict(type='mmwst.WST')])
    wst = model.tuners[0].branch
    for linear in (*wst.down, *wst.up):
        assert torch.equal(linear.bias, torch.zeros_like(linear.bias))
        assert linear.weight.abs().max() > 0 and 0.01 < linear.weight.std() < 0.03
    conv = wst.patch_embed  # PyTorch's default: uniform within 1 / sqrt(fan_in)
    bound = 1 / (3 * 4 * 4) ** 0.5
    assert conv.kernel_size == conv.stride == (4, 4) and conv.out_channels == 32 // 4
    assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound


def test_forward_equals_the_formulas_block_by_block():
    model, probe = _model(scale=0.7)
    inputs, outputs = _record_blocks(model)
    wst, x = model.tuners[0].branch, _image()
    with torch.no_grad():
        result = model(x)[0]
        h = w = 32 // 8
        state = F.conv2d(x, wst.patch_embed.weight, wst.patch_embed.bias, stride=4)
        assert torch.equal(state, probe.record['states'][0])
        # the branch starts from the sub-bands of S_0
        torch.testing.assert_close(
            _tokens(_haar_dwt(state)), _tokens(probe.record['bands'].permute(0, 3, 1, 2))
        )
        for i in range(len(model.layers)):
            tokens = inputs[i]
            mixed = _tokens(_haar_dwt(state)) + tokens[:, 1:]  # Z_l
            down, up = wst.down[i], wst.up[i]
            out = (mixed @ down.weight.T + down.bias) @ up.weight.T + up.bias  # W_l
            torch.testing.assert_close(probe.record['outputs'][i], out)
            state = _haar_idwt(_grid(out, h, w))  # S_{l+1}
            torch.testing.assert_close(probe.record['states'][i + 1], state)
            after = outputs[i].clone()
            after[:, 1:] += 0.7 * out
            if i + 1 < len(model.layers):
                assert torch.equal(inputs[i + 1][:, 0], outputs[i][:, 0])  # cls untouched
                torch.testing.assert_close(inputs[i + 1], after)
        expected = model.ln1(after[:, 1:].mean(dim=1))  # avg_patch -> frozen final norm
        torch.testing.assert_close(result, expected)


@pytest.mark.parametrize('wavelet', ['haar', 'db2'])
def test_values_and_gradients_equal_the_papers_literal_steps(wavelet):
    """The branch carries DWT(S_l) instead of transforming IDWT(W_{l-1}) back at every
    layer; in float32 its output and the gradient of every trainable equal those of the
    paper's steps run literally (DWT and IDWT at every layer) within 1e-5."""
    from mmwst.models.layers import DWT2d, IDWT2d

    model, _ = _model(scale=0.7, wavelet=wavelet, dtype=torch.float32)
    inputs, _ = _record_blocks(model)
    branch, x = model.tuners[0].branch, _image(dtype=torch.float32)
    out = model(x)[0]
    grad = torch.randn_like(out)
    params = list(branch.parameters())
    ours = torch.autograd.grad(out, params, grad)

    dwt, idwt = DWT2d(wavelet), IDWT2d(wavelet)
    tokens = inputs[0].detach()  # the embedded tokens: nothing trainable before block 0
    state = branch.patch_embed(x)  # S_0
    for i, layer in enumerate(model.layers):
        mixed = _tokens(dwt(state)) + tokens[:, 1:]  # Z_l = DWT(S_l) + X_l
        w = branch.up[i](branch.down[i](mixed))  # W_l
        state = idwt(_grid(w, 4, 4))  # S_{l+1} = IDWT(W_l)
        tokens = layer(tokens)
        tokens = torch.cat([tokens[:, :1], tokens[:, 1:] + 0.7 * w], dim=1)
    literal = model.ln1(tokens[:, 1:].mean(dim=1))
    torch.testing.assert_close(out, literal, rtol=1e-5, atol=1e-5)
    for name, a, b in zip(
        [n for n, _ in branch.named_parameters()], ours, torch.autograd.grad(literal, params, grad)
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


def test_branch_state_equals_pywavelets_for_db2():
    model, probe = _model(wavelet='db2')
    with torch.no_grad():
        model(_image())
    for out, state in zip(probe.record['outputs'], probe.record['states'][1:]):
        grid = _grid(out, 4, 4).numpy()
        ll, lh, hl, hh = np.split(grid, 4, axis=1)
        direct = pywt.idwt2((ll, (lh, hl, hh)), 'db2', mode='periodization')
        np.testing.assert_allclose(state.numpy(), direct, rtol=1e-10, atol=1e-12)


def test_scale_scales_the_injected_residual():
    diffs = {}
    for scale in (0.0, 1.0, 3.0):
        model, probe = _model(scale=scale)
        inputs, outputs = _record_blocks(model)
        with torch.no_grad():
            model(_image())
        diff = inputs[1] - outputs[0]
        assert torch.equal(diff[:, 0], torch.zeros_like(diff[:, 0]))  # cls untouched
        torch.testing.assert_close(diff[:, 1:], scale * probe.record['outputs'][0])
        diffs[scale] = diff[:, 1:]
    assert torch.equal(diffs[0.0], torch.zeros_like(diffs[0.0]))
    torch.testing.assert_close(diffs[3.0], 3 * diffs[1.0])


def test_grid_follows_the_input():
    model, probe = _model(dtype=torch.float32)
    for size in ((32, 48), (48, 24)):
        with torch.no_grad():
            out = model(_image(*size, dtype=torch.float32))[0]
        h, w = size[0] // 8, size[1] // 8
        assert out.shape == (2, 32) and torch.isfinite(out).all()
        states, outs = probe.record['states'], probe.record['outputs']
        assert len(states) == 5 and len(outs) == 4
        assert all(s.shape == (2, 8, 2 * h, 2 * w) for s in states)
        assert all(o.shape == (2, h * w, 32) for o in outs)


def test_patch_tokens_follow_extra_prefix_tokens():
    prompts = dict(type='mmwst.VPT', num_prompts=3, deep=False)
    model, probe = _model(scale=2.0, extra=(prompts,))
    inputs, outputs = _record_blocks(model)
    with torch.no_grad():
        model(_image())
    prefix = 1 + 3  # cls + prompts stay untouched
    assert torch.equal(inputs[1][:, :prefix], outputs[0][:, :prefix])
    expected = outputs[0][:, prefix:] + 2.0 * probe.record['outputs'][0]
    torch.testing.assert_close(inputs[1][:, prefix:], expected)


def test_bf16_autocast_forward_and_backward():
    model, _ = _model(dtype=torch.float32)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(_image(32, 48, dtype=torch.float32))[0]
    out.float().square().mean().backward()
    assert torch.isfinite(out.float()).all()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, name


def test_user_errors_are_clear():
    with pytest.raises(
        UnsupportedHostError,
        match="WST runs on vit or sam hosts.*'swin' host.*one fixed patch grid",
    ):
        build_host('swin', [dict(type='mmwst.WST')])
    with pytest.raises(ValueError, match='patch size must be even'):
        TunedVisionTransformer(
            arch=VIT_ARCH, img_size=35, patch_size=7, tuners=[dict(type='mmwst.WST')]
        )
    arch = dict(VIT_ARCH, embed_dims=30)
    with pytest.raises(ValueError, match='divisible by 4'):
        TunedVisionTransformer(
            arch=arch, img_size=32, patch_size=8, tuners=[dict(type='mmwst.WST')]
        )
    with pytest.raises(ValueError, match='rank must be a positive integer'):
        WST(rank=0)
    with pytest.raises(TypeError, match='scale must be a real number'):
        WST(scale='10')
    with pytest.raises(ValueError, match='not orthogonal'):
        WST(wavelet='bior2.2')


def test_without_feedback_the_branch_runs_beside_the_frozen_tokens():
    """feedback=False: the host computes its frozen features exactly, while the branch
    still steps each layer on them (its state after the blocks is the last W_l)."""
    torch.manual_seed(0)
    tuned = TunedVisionTransformer(
        arch=VIT_ARCH,
        img_size=32,
        patch_size=8,
        out_type='raw',
        tuners=[dict(type='mmwst.WST', scale=10.0, feedback=False)],
    )
    tuned.init_weights()
    perturb_tuners(tuned, seed=1)
    frozen = TunedVisionTransformer(arch=VIT_ARCH, img_size=32, patch_size=8, out_type='raw')
    with tuned.full_state_dict():
        host = {k: v for k, v in tuned.state_dict().items() if not k.startswith('tuners.')}
    frozen.load_state_dict(host, strict=False)
    wst = tuned.tuners[0]
    states = []
    step = wst.branch.step

    def keep(index, bands, patches, weights=None):
        states.append(step(index, bands, patches, weights))
        return states[-1]

    wst.branch.step = keep
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(tuned(x)[0], frozen(x)[0], rtol=0, atol=0)
    assert len(states) == len(tuned.layers) and all(s.abs().sum() > 0 for s in states)
    assert 'feedback=False' in repr(wst)


@pytest.mark.parametrize('frozen_dtype', [None, 'bf16'])
def test_under_autocast_the_bottlenecks_are_cast_in_one_copy(monkeypatch, frozen_dtype):
    """Under bf16 autocast WST casts every layer's bottleneck (D_l and U_l, weights and
    biases) in one copy before the blocks instead of four casts per layer at its products
    and four back: the same outputs and gradients bit for bit, 8 L - 2 casts fewer per
    step, and the step still compiles into one graph."""
    import torch._dynamo

    import mmwst.models.tuners.wst as wst_module
    from tools.benchmarking.ops import count_ops

    torch.manual_seed(0)
    model = TunedVisionTransformer(
        arch=VIT_ARCH,
        img_size=32,
        patch_size=8,
        out_type='avg_patch',
        frozen_dtype=frozen_dtype,
        tuners=[dict(type='mmwst.WST', rank=2, scale=10.0)],
    )
    model.init_weights()
    perturb_tuners(model)
    model.train()
    x = _image(dtype=torch.float32)

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)[0]
        (out.float() * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.detach(), grads

    out, grads = step()
    casts = count_ops(step)[1]['_to_copy']
    with monkeypatch.context() as patch:  # autocast's own casts, product by product
        patch.setattr(wst_module, 'autocast_dtype', lambda device_type: None)
        plain_out, plain_grads = step()
        plain_casts = count_ops(step)[1]['_to_copy']
    assert torch.equal(out, plain_out)
    assert grads.keys() == plain_grads.keys() and any('down' in n for n in grads)
    assert all(torch.equal(grads[n], plain_grads[n]) for n in grads)
    layers = VIT_ARCH['num_layers']
    assert plain_casts - casts == 8 * layers - 2, (plain_casts, casts)
    torch._dynamo.reset()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch._dynamo.explain(model)(x).graph_break_count == 0
