"""Each baseline's own math, checked against a direct re-computation."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mmwst.models.layers.tunable import TunableMultiheadAttention, make_tunable_attention
from tests.models.tuners.table import assert_merge_round_trip, build_host, perturb_tuners


def _vit(tuners):
    torch.manual_seed(0)
    model = build_host('vit', tuners).eval()
    perturb_tuners(model)
    return model


def test_lora_on_fused_qkv_equals_three_separate_layers():
    model = _vit([dict(type='mmwst.LoRA', rank=3, alpha=6, targets=('q', 'k', 'v'))])
    lora, qkv = model.tuners[0], model.layers[0].attn.qkv
    x = torch.randn(2, 5, 32)
    dim = 32
    parts = []
    for s, name in enumerate('qkv'):
        w, b = qkv.weight[s * dim : (s + 1) * dim], qkv.bias[s * dim : (s + 1) * dim]
        A, B = lora.lora_A[f'0_{name}'], lora.lora_B[f'0_{name}']
        parts.append(F.linear(x, w, b) + (x @ A.T @ B.T) * (6 / 3))
    with torch.no_grad():
        torch.testing.assert_close(qkv(x), torch.cat(parts, dim=-1))


def test_lora_only_touches_selected_slices():
    model = _vit([dict(type='mmwst.LoRA', rank=2, targets=('v',))])
    qkv = model.layers[1].attn.qkv
    x = torch.randn(3, 32)
    with torch.no_grad():
        plain = F.linear(x, qkv.weight, qkv.bias)
        out = qkv(x)
    assert torch.equal(out[:, :64], plain[:, :64])  # q and k untouched
    assert not torch.allclose(out[:, 64:], plain[:, 64:])


def test_ssf_scales_and_shifts_the_linear_output():
    model = _vit([dict(type='mmwst.SSF')])
    ssf, fc1 = model.tuners[0], model.layers[0].ffn.layers[0][0]
    x = torch.randn(4, 32)
    expected = (
        F.linear(x, fc1.weight, fc1.bias) * ssf.pairs.gamma['0_fc1'] + ssf.pairs.beta['0_fc1']
    )
    with torch.no_grad():
        torch.testing.assert_close(fc1(x), expected)


def test_adapter_is_sequential_after_the_output_projection():
    model = _vit([dict(type='mmwst.Adapter', bottleneck=4)])
    adapter, proj = model.tuners[0].adapters['1_attn'], model.layers[1].attn.proj
    x = torch.randn(2, 32)
    h = F.linear(x, proj.weight, proj.bias)
    expected = h + adapter.up(F.gelu(adapter.down(h)))
    with torch.no_grad():
        torch.testing.assert_close(proj(x), expected)


def test_adaptformer_runs_beside_the_mlp_and_is_scaled():
    model = _vit([dict(type='mmwst.AdaptFormer', bottleneck=4, scale=0.5)])
    block = model.layers[0]
    adapter = model.tuners[0].adapters['0']
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        normed = block.ln2(x)
        mlp = block.ffn.layers(normed)
        expected = x + mlp + 0.5 * adapter.up(F.relu(adapter.down(normed)))
        torch.testing.assert_close(block.ffn(normed, identity=x), expected)


def test_vpt_inserts_replaces_and_removes_prompts():
    for deep in (False, True):
        model = _vit([dict(type='mmwst.VPT', num_prompts=3, deep=deep)])
        seen = []
        for layer in model.layers:
            layer.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0]))
        model.out_type = 'raw'
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 32))[0]
        assert out.shape == (2, 1 + 16, 32)  # prompts removed before the output
        assert seen[0].shape == (2, 1 + 3 + 16, 32)
        prompts = model.tuners[0].prompts
        torch.testing.assert_close(seen[0][:, 1:4], prompts[0].expand(2, -1, -1))
        if deep:
            torch.testing.assert_close(seen[1][:, 1:4], prompts[1].expand(2, -1, -1))
        else:
            assert not torch.allclose(seen[1][:, 1:4], prompts[0].expand(2, -1, -1))


@pytest.mark.parametrize('dropout', [0.0, 0.3])
def test_vpt_deep_casts_its_prompts_in_one_copy_for_a_bf16_host(monkeypatch, dropout):
    """With the frozen host in bf16, VPT-deep casts every layer's prompts (float32
    parameters) to the tokens' type in one copy before the blocks, not one cast per
    layer: the same outputs and prompt gradients bit for bit (dropout's draws too), 2 L -
    2 casts fewer per step, and the model still traces into one graph."""
    import torch._dynamo

    import mmwst.models.tuners.vpt as vpt_module
    from tools.benchmarking.ops import count_ops

    model = build_host(
        'vit', [dict(type='mmwst.VPT', num_prompts=3, dropout=dropout)], frozen_dtype='bf16'
    )
    torch.manual_seed(0)
    model.init_weights()
    perturb_tuners(model)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    weights = torch.linspace(-1, 1, 32)

    def step():
        torch.manual_seed(1)  # the same dropout draws in both runs
        model.zero_grad(set_to_none=True)
        out = model(x)[0]
        (out.float() * weights).sum().backward()
        return out.detach(), [p.grad.clone() for p in model.tuners[0].prompts]

    out, grads = step()
    casts = count_ops(step)[1]['_to_copy']
    with monkeypatch.context() as patch:  # as before: each layer's prompts dropped out, then cast
        patch.setattr(
            vpt_module.VPT,
            '_layer_prompts',
            lambda self, dtype: tuple(self.dropout(p).to(dtype) for p in self.prompts),
        )
        plain_out, plain_grads = step()
        plain_casts = count_ops(step)[1]['_to_copy']
    assert torch.equal(out, plain_out)
    assert all(g.abs().sum() > 0 and torch.equal(g, h) for g, h in zip(grads, plain_grads))
    layers = len(model.layers)
    assert plain_casts - casts == 2 * layers - 2, (plain_casts, casts)
    torch._dynamo.reset()
    assert torch._dynamo.explain(model)(x).graph_break_count == 0


def test_tunable_vit_attention_is_bit_identical_without_extensions():
    model = _vit([])
    attn = model.layers[0].attn
    x = torch.randn(2, 17, 32)
    with torch.no_grad():
        expected = attn(x)
        make_tunable_attention(attn)
        assert isinstance(attn, TunableMultiheadAttention)
        assert torch.equal(attn(x), expected)


def test_tunable_window_attention_matches_swin_with_shifted_windows():
    torch.manual_seed(0)
    swin = build_host('swin', []).eval()
    reference = copy.deepcopy(swin)
    for spec in swin.blocks:
        make_tunable_attention(spec.attn)  # fused SDPA with bias + shift mask
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(swin(x)[0], reference(x)[0], rtol=1e-5, atol=1e-5)


def test_vpt_on_swin_adds_keys_to_every_window():
    torch.manual_seed(0)
    model = build_host('swin', [dict(type='mmwst.VPT', num_prompts=2, deep=True)]).eval()
    plain = build_host('swin', []).eval()
    with model.full_state_dict():
        plain.load_state_dict(
            {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
        )
    x = torch.randn(1, 3, 64, 64)
    captured = {}
    attn = model.blocks[0].attn
    handle = attn.qkv.register_forward_hook(lambda m, i, o: captured.update(n=o.shape))
    with torch.no_grad():
        out, ref = model(x)[0], plain(x)[0]
    handle.remove()
    assert captured['n'][1] == 16  # queries stay the 4x4 window tokens
    assert not torch.allclose(out, ref)


def test_ssf_unmerge_restores_exactly_where_a_scale_is_near_zero():
    model = _vit([dict(type='mmwst.SSF')])
    ssf = model.tuners[0]
    with torch.no_grad():
        for gamma in ssf.pairs.gamma.values():
            gamma[:2] = torch.tensor([0.0, 1e-7])
    assert_merge_round_trip(model, torch.randn(2, 3, 32, 32))
