"""RLRR's own math, checked against direct re-computations, and its ViT-B/16 counts."""

import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from torch import nn
from torch.overrides import TorchFunctionMode

import mmwst.models.tuners.rlrr  # noqa: F401  (registers mmwst.RLRR)
from mmwst.models.param_report import parameter_report
from tests.helpers import REPO
from tests.models.tuners.table import assert_merge_round_trip, build_host, perturb_tuners

D, HIDDEN, LAYERS = 768, 3072, 12  # ViT-B/16
RLRR_BLOCK = 4 * (D + D + D) + (D + HIDDEN + HIDDEN) + (HIDDEN + D + D) + 2 * 2 * D
RLRR_VIT_B16 = LAYERS * RLRR_BLOCK + 2 * D + 2 * D


def _model(kind='vit', seed=0, **kwargs):
    torch.manual_seed(seed)
    model = build_host(kind, [dict(type='mmwst.RLRR', **kwargs)]).eval()
    perturb_tuners(model, seed)  # move the shifts f away from zero too
    return model


def _rescaled(weight, s_out, s_in, bias, f):
    """W * (1 + s_out s_in), b + f for one plain layer (s_out: (d_out,), s_in: (d_in,))."""
    return weight * (1 + s_out[:, None] * s_in[None, :]), bias + f


@pytest.mark.parametrize('name', ['proj', 'fc1', 'fc2'])
def test_effective_weight_is_w_times_one_plus_s_out_s_in(name):
    model = _model()
    rlrr, layer = model.tuners[0], getattr(model.blocks[1], name)
    key = f'1_{name}'
    weight, bias = _rescaled(
        layer.weight, rlrr.scale_out[key], rlrr.scale_in[key][0], layer.bias, rlrr.shift[key]
    )
    x = torch.randn(3, 5, layer.in_features)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, weight, bias))


def test_fused_qkv_equals_three_separate_layers():
    model = _model()
    rlrr, qkv = model.tuners[0], model.blocks[0].qkv
    dim = qkv.in_features
    s_out, s_in, f = rlrr.scale_out['0_qkv'], rlrr.scale_in['0_qkv'], rlrr.shift['0_qkv']
    assert s_out.shape == (3 * dim,) and f.shape == (3 * dim,) and s_in.shape == (3, dim)
    layers = []
    for s in range(3):  # q, k, v as three plain nn.Linear layers, rescaled by hand
        rows = slice(s * dim, (s + 1) * dim)
        linear = nn.Linear(dim, dim)
        weight, bias = _rescaled(qkv.weight[rows], s_out[rows], s_in[s], qkv.bias[rows], f[rows])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        layers.append(linear)
    x = torch.randn(2, 7, dim)
    with torch.no_grad():
        torch.testing.assert_close(qkv(x), torch.cat([layer(x) for layer in layers], dim=-1))

    # each slice has its own s_in: the q slice's output reaches s_in[0] only
    qkv(x)[..., :dim].sum().backward()
    grad = s_in.grad
    assert grad[0].abs().sum() > 0 and torch.all(grad[1:] == 0)


class _CountLinear(TorchFunctionMode):
    """Counts the matrix products over the activations (an operand with the input's
    ``(2, 5)`` leading dims, or those flattened): not the small products of the scales."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (F.linear, torch.matmul, torch.mm, torch.bmm, torch.addmm):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            self.calls += any(t.shape[:-1] in ((2, 5), (10,)) for t in tensors)
        return func(*args, **(kwargs or {}))


def test_training_costs_one_matmul_per_layer():
    """The rescaled weight is built from the scales (small products), then one product
    with the activations - not a second, token-wide one."""
    model = _model().train()
    for layer in model.blocks[0].linears().values():
        inputs = torch.randn(2, 5, layer.in_features)
        with _CountLinear() as counter:
            layer(inputs).sum().backward()
        assert counter.calls == 1


def test_init_follows_methods_md():
    torch.manual_seed(0)
    rlrr = build_host('vit', [dict(type='mmwst.RLRR')]).tuners[0]
    for key, s_in in rlrr.scale_in.items():
        bound = math.sqrt(6.0 / s_in.shape[-1])
        assert s_in.abs().max() <= bound and s_in.abs().max() > 0.5 * bound, key
        s_out = rlrr.scale_out[key]
        assert s_out.abs().max() <= math.sqrt(6.0) and s_out.abs().max() > 1.0, key
        assert torch.all(rlrr.shift[key] == 0), key
    gammas = torch.cat(list(rlrr.pairs.gamma.values()))
    betas = torch.cat(list(rlrr.pairs.beta.values()))
    assert abs(gammas.mean() - 1) < 0.01 and 0.01 < gammas.std() < 0.03
    assert abs(betas.mean()) < 0.01 and 0.01 < betas.std() < 0.03
    assert set(rlrr.pairs.gamma) == {'patch_embed', 'final0'} | {
        f'{i}_norm{n}' for i in range(4) for n in (1, 2)
    }


def _by_hand(model, image):
    """The tiny ViT's forward written out, with every RLRR change applied explicitly."""
    rlrr = model.tuners[0]
    g, b = rlrr.pairs.gamma, rlrr.pairs.beta

    def norm(module, x, key):
        x = F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)
        return x * g[key] + b[key]

    def linear(layer, key, x):
        factor = rlrr.scale_out[key].view(rlrr.scale_in[key].shape[0], -1, 1)
        factor = (factor * rlrr.scale_in[key].unsqueeze(1)).reshape(layer.weight.shape)
        return F.linear(x, layer.weight * (1 + factor), layer.bias + rlrr.shift[key])

    conv = model.patch_embed.projection
    x = F.conv2d(image, conv.weight, conv.bias, stride=conv.stride)
    B, C, h, w = x.shape
    x = x.flatten(2).transpose(1, 2) * g['patch_embed'] + b['patch_embed']  # before cls, pos
    x = torch.cat([model.cls_token.expand(B, -1, -1), x], dim=1) + model.pos_embed
    for spec in model.blocks:
        i, heads = spec.index, spec.num_heads
        q, k, v = linear(spec.qkv, f'{i}_qkv', norm(spec.norm1, x, f'{i}_norm1')).chunk(3, -1)
        # (B, N, C) -> (B, heads, N, C / heads)
        q, k, v = (t.reshape(B, -1, heads, C // heads).transpose(1, 2) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1) * (C // heads) ** -0.5).softmax(-1)
        # (B, heads, N, C / heads) -> (B, N, C)
        out = (attn @ v).transpose(1, 2).reshape(B, -1, C)
        x = x + linear(spec.proj, f'{i}_proj', out)
        hidden = F.gelu(linear(spec.fc1, f'{i}_fc1', norm(spec.norm2, x, f'{i}_norm2')))
        x = x + linear(spec.fc2, f'{i}_fc2', hidden)
    return norm(model.ln1, x, 'final0')[:, 0]


def test_forward_equals_the_paper_written_out():
    model = _model()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(image)[0], _by_hand(model, image))


def test_gradients_equal_the_paper_written_out():
    """Every trained parameter's gradient through the whole model (the rescaling's own
    backward, the SSF pairs as batch_norm, the shifts made for all layers at once)
    equals the one through the forward written out with plain operators."""
    model = _model().train()
    image = torch.randn(2, 3, 32, 32)
    weights = torch.randn(2, 32)
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    mine = torch.autograd.grad((model(image)[0] * weights).sum(), list(trained.values()))
    assert not model.tuners[0]._shifted  # this forward pass took every shifted bias
    by_hand = torch.autograd.grad((_by_hand(model, image) * weights).sum(), list(trained.values()))
    for name, a, b in zip(trained, mine, by_hand):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    ('kind', 'key'), [('vit', '1_qkv'), ('vit', '1_fc2'), ('swin', '0_qkv'), ('swin', 'merge0')]
)
def test_rescaled_weight_and_its_gradients_equal_the_formula(kind, key):
    """One layer on its own (its shifted bias made there, not for all layers at once):
    ``W * (1 + s_out s_in)``, ``b + f`` and the gradients of the scales, the shift and,
    were it trained, ``W``, as from the formula written out. ViT qkv: three slices of
    ``s_in``; released Swin layout: one, and a reduction without a bias."""
    model = _model(kind)
    rlrr = model.tuners[0]
    layer = rlrr._linears[key]
    weight = layer.weight.detach().clone().requires_grad_()
    bias = None if layer.bias is None else layer.bias.detach().clone().requires_grad_()
    s_out, s_in, f = rlrr.scale_out[key], rlrr.scale_in[key], rlrr.shift[key]
    groups = s_in.shape[0]
    # (groups, d_out / groups, 1) * (groups, 1, d_in) -> (d_out, d_in)
    factor = (s_out.view(groups, -1, 1) * s_in.unsqueeze(1)).reshape(weight.shape)
    expected = (weight * (1 + factor), f if bias is None else bias + f)
    got = rlrr.effective_weight(key, weight, bias)
    leaves = [t for t in (weight, bias, s_out, s_in, f) if t is not None]
    grads = [torch.randn(t.shape) for t in expected]
    for a, b, what in zip(got, expected, ('weight', 'bias')):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=what)
    mine = torch.autograd.grad(got, leaves, grads)
    direct = torch.autograd.grad(expected, leaves, grads)
    for a, b in zip(mine, direct):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ('kind', 'variant'), [('vit', 'release'), ('swin', 'release'), ('swin', 'mmwst')]
)
def test_merged_weights_run_on_a_plain_host_without_hooks(kind, variant):
    model = _model(kind, swin_variant=variant)
    image = torch.randn(2, 3, 64 if kind == 'swin' else 32, 64 if kind == 'swin' else 48)
    embed = model.patch_embed  # Swin: the pair goes into its norm; ViT: into the conv
    embed_weight = embed.norm.weight if kind == 'swin' else embed.projection.weight
    before = embed_weight.detach().clone()
    reductions = model.merging_layers()
    released_swin = kind == 'swin' and variant == 'release'
    with torch.no_grad():
        expected = model(image)[0]
        model.merge_tuners()
        # released Swin layout: the bias-free reductions get their shift as a bias
        assert all((r.bias is not None) is released_swin for r in reductions)
        with model.full_state_dict():
            host = {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
        plain = build_host(kind, []).eval()  # the plain TunedVisionTransformer / Swin
        if released_swin:
            for reduction in plain.merging_layers():
                reduction.bias = nn.Parameter(torch.zeros(reduction.out_features))
        plain.load_state_dict(host, strict=True)
        torch.testing.assert_close(plain(image)[0], expected, rtol=1e-5, atol=1e-5)
    # the patch embedding's pair: folded in, except in the released Swin layout (none)
    assert torch.equal(embed_weight, before) is released_swin
    model.unmerge_tuners()
    assert all(r.bias is None for r in reductions)


def test_unmerge_restores_the_frozen_weights_bit_for_bit_where_a_factor_is_zero():
    model = _model()
    rlrr, proj = model.tuners[0], model.blocks[0].proj
    with torch.no_grad():
        rlrr.scale_out['0_proj'][0] = 1.0
        rlrr.scale_in['0_proj'][0, 0] = -1.0  # 1 + s_out s_in == 0 at (0, 0)
    original = proj.weight.detach().clone()
    model.merge_tuners()
    assert proj.weight[0, 0] == 0
    model.unmerge_tuners()
    assert torch.equal(proj.weight, original)


def test_branch_dropout_is_elementwise_and_rises_over_blocks():
    model = _model(branch_drop_rate=0.3)
    plain = _model()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # eval: no dropout, the same parameters as without it
        torch.testing.assert_close(model(image)[0], plain(image)[0], rtol=0, atol=0)
    seen = {}
    for spec in (model.blocks[0], model.blocks[-1]):
        spec.mlp.register_forward_hook(
            lambda m, i, out, index=spec.index: seen.__setitem__(index, out)
        )
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    assert not torch.any(seen[0] == 0)  # rate 0 at the first block
    zeros = (seen[3] == 0).float()
    assert 0.2 < zeros.mean() < 0.4  # 0.3 at the last block
    per_token = zeros.mean(dim=-1)
    assert torch.all(per_token < 1) and torch.all(per_token > 0)  # not whole tokens / samples


def test_invalid_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match='branch_drop_rate'):
        build_host('vit', [dict(type='mmwst.RLRR', branch_drop_rate=1.5)])
    with pytest.raises(ValueError, match='std'):
        build_host('vit', [dict(type='mmwst.RLRR', std=-1)])


def test_deepcopy_rebinds_the_weight_functions():
    model = _model()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.tuners[0].scale_out['0_fc1'].zero_()
    x = torch.randn(2, 32)
    fc1, twin_fc1 = model.blocks[0].fc1, twin.blocks[0].fc1
    with torch.no_grad():
        assert not torch.allclose(fc1(x), twin_fc1(x))
        expected = F.linear(x, twin_fc1.weight, twin_fc1.bias + twin.tuners[0].shift['0_fc1'])
        torch.testing.assert_close(twin_fc1(x), expected)


# ---- the configs ------------------------------------------------------------------------
def _build_config(name: str, **backbone):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'rlrr', name))
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


def test_vit_b16_config_trains_288768_and_a_zero_head():
    model = _build_config('vit-b16_vtab-1k.py', pretrained=None)
    report = parameter_report(model)
    assert report.trainable_without_head == RLRR_VIT_B16 == 288_768
    rlrr = model.backbone.tuners[0]
    block0 = sum(p.numel() for n, p in rlrr.named_parameters() if n.split('.')[-1].startswith('0_'))
    assert block0 == RLRR_BLOCK == 23_808
    assert model.backbone.out_type == 'cls_token'
    model.head.init_weights()
    assert all(torch.all(p == 0) for p in model.head.parameters())


SWIN_B_DIMS = [128] * 2 + [256] * 2 + [512] * 18 + [1024] * 2  # Swin-B blocks


def test_swin_b_config_is_the_released_layout_358144():
    """The released Swin code: qkv with one shared s_in (7D), proj 3D, fc1 9D, fc2 6D,
    SSF 4D per block; the three patch-merging reductions (4C + 2C + 2C); SSF after the
    final norm; nothing after the patch embedding."""
    model = _build_config('swin-b_vtab-1k.py', pretrained=None)
    per_block = sum((3 * d + d + 3 * d) + 3 * d + 9 * d + 6 * d + 4 * d for d in SWIN_B_DIMS)
    assert per_block == 348_928
    merging = sum(4 * c + 2 * c + 2 * c for c in (128, 256, 512))
    expected = per_block + merging + 2 * 1024
    rlrr = model.backbone.tuners[0]
    assert parameter_report(model).trainable_without_head == expected == 358_144
    assert rlrr.param_count(model.backbone) == expected
    assert 'patch_embed' not in rlrr.pairs.gamma
    assert [tuple(rlrr.scale_in[f'merge{i}'].shape) for i in range(3)] == [
        (1, 4 * c) for c in (128, 256, 512)
    ]
    assert all(rlrr.scale_in[f'{i}_qkv'].shape[0] == 1 for i in range(24))


def test_swin_b_mmwst_layout_375296():
    """mmwst's own Swin layout: three s_in in qkv, SSF after the patch embedding, the
    reductions left alone."""
    model = _build_config(
        'swin-b_vtab-1k.py', pretrained=None, tuners=[dict(type='mmwst.RLRR', swin_variant='mmwst')]
    )
    expected = sum(4 * 3 * d + (d + 4 * d + 4 * d) + (4 * d + 2 * d) + 4 * d for d in SWIN_B_DIMS)
    expected += 2 * 128 + 2 * 1024  # after the patch embedding, after the final norm
    assert parameter_report(model).trainable_without_head == expected == 375_296


def _swin_by_hand(model):
    """A plain Swin whose weights are rewritten with the released Swin layout's formulas
    by hand: every block Linear and every reduction ``W (1 + s_out s_in)`` (one s_in
    across q, k, v), biases ``b + f`` (``f`` for the bias-free reductions), and each SSF
    pair applied after its norm (``LN(x) * gamma + beta``, i.e. weight * gamma, bias *
    gamma + beta); the patch embedding untouched."""
    rlrr = model.tuners[0]
    plain = build_host('swin', []).eval()
    with model.full_state_dict():
        host = {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
    plain.load_state_dict(host, strict=True)
    with torch.no_grad():
        layers = [
            (f'{spec.index}_{name}', getattr(spec, name))
            for spec in plain.blocks
            for name in ('qkv', 'proj', 'fc1', 'fc2')
        ] + [(f'merge{i}', layer) for i, layer in enumerate(plain.merging_layers())]
        for key, layer in layers:
            s_in, s_out, f = rlrr.scale_in[key][0], rlrr.scale_out[key], rlrr.shift[key]
            layer.weight.mul_(1 + s_out[:, None] * s_in[None, :])
            if layer.bias is None:
                layer.bias = nn.Parameter(f.detach().clone())
            else:
                layer.bias.add_(f)
        norms = [
            (f'{spec.index}_{name}', getattr(spec, name))
            for spec in plain.blocks
            for name in ('norm1', 'norm2')
        ] + [(f'final{i}', norm) for i, norm in enumerate(plain.final_norms())]
        for key, norm in norms:
            gamma, beta = rlrr.pairs.gamma[key], rlrr.pairs.beta[key]
            norm.bias.mul_(gamma).add_(beta)
            norm.weight.mul_(gamma)
    return plain


def test_swin_release_layout_equals_the_released_formulas_by_hand():
    model = _model('swin')
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(image)[0], _swin_by_hand(model)(image)[0])
    # each rescaled reduction really changes the features (s_in, s_out, f all reach it)
    reduction = model.merging_layers()[0]
    x = torch.randn(3, reduction.in_features)
    with torch.no_grad():
        assert not torch.allclose(reduction(x), F.linear(x, reduction.weight))


def test_swin_variant_is_checked():
    with pytest.raises(ValueError, match="swin_variant must be one of 'release', 'mmwst'"):
        build_host('swin', [dict(type='mmwst.RLRR', swin_variant='paper')])
    with pytest.raises(ValueError, match='Swin hosts only'):
        build_host('vit', [dict(type='mmwst.RLRR', swin_variant='mmwst')])


def test_unmerge_restores_exactly_where_an_ssf_scale_or_a_factor_is_near_zero():
    """Dividing by a scale near zero would blow the weights up; they are kept instead."""
    model = _model()
    rlrr = model.tuners[0]
    key = next(iter(rlrr.pairs.gamma))
    with torch.no_grad():
        rlrr.pairs.gamma[key][:3] = torch.tensor([0.0, 1e-6, -1e-5])
        rlrr.scale_out['0_proj'][0] = 1.0
        rlrr.scale_in['0_proj'][0, 0] = -1.0 + 1e-6  # 1 + s_out s_in ~ 1e-6
    assert_merge_round_trip(model, torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize('config', ['vit-b16_vtab-1k.py', 'swin-b_vtab-1k.py'])
def test_vtab_configs_take_the_released_per_task_settings(config, monkeypatch):
    """ViT-B/16 and Swin-B alike: lr, weight decay, branch dropout and the flip of the
    task's released row (clevr_dist: 1e-2 / 0.2 / 5e-5 / flip); the warm-up starts at
    1e-7."""
    monkeypatch.setenv('VTAB_TASK', 'clevr_dist')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'rlrr', config))
    assert cfg.optim_wrapper.optimizer.lr == 1e-2
    assert cfg.param_scheduler[0].warmup_start == 1e-7  # absolute, whatever the lr
    assert cfg.optim_wrapper.optimizer.weight_decay == 5e-5
    assert cfg.model.backbone.tuners[0].branch_drop_rate == 0.2
    assert any(t['type'] == 'RandomFlip' for t in cfg.train_dataloader.dataset.pipeline)
    assert cfg.model.head.num_classes == 6


def test_a_bf16_weights_qkv_scale_gradient_is_summed_in_float32():
    """With a bf16 frozen ``W`` and float32 q / k / v scales, ``dL/ds_in`` is the sum
    over each slice's rows of ``K * W`` taken in float32 (the products in bf16, as the
    step computes them), not rounded to bf16 and cast back: no cast in the backward."""
    from mmwst.models.layers.scale_shift import UnitMoments
    from mmwst.models.tuners.rlrr import _ResidualRescale
    from tools.benchmarking.ops import count_ops

    gen = torch.Generator().manual_seed(0)
    dim = 16
    weight = torch.randn(3 * dim, dim, generator=gen).bfloat16()
    s_out = torch.randn(3 * dim, generator=gen).requires_grad_()
    s_in = torch.randn(3, dim, generator=gen).requires_grad_()
    moments = UnitMoments()
    moments.reserve(3 * dim)
    zeros, ones = moments.get(3 * dim, torch.float32)
    grad = torch.randn(3 * dim, dim, generator=gen).bfloat16()
    out = _ResidualRescale.apply(weight, s_out, s_in, zeros, ones)
    counted = count_ops(lambda: out.backward(grad))[1]
    assert counted['_to_copy'] == 0, counted
    rows = (grad.float() * s_out.detach()[:, None]).bfloat16().view(3, dim, dim)  # K = G s_out
    products = rows * weight.view(3, dim, dim)
    assert s_in.grad.dtype == torch.float32
    torch.testing.assert_close(s_in.grad, products.float().sum(1), rtol=1e-6, atol=1e-6)
    assert not torch.equal(s_in.grad, products.sum(1).float())  # what a bf16 sum gives
