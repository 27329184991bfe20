"""Prefix tuning's own math and its ViT-B/16 count."""

from __future__ import annotations

import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmwst.models.tuners.prefix  # noqa: F401  (registers PrefixTuning)
from mmwst.models.param_report import parameter_report
from mmwst.models.tuners.prefix import PrefixTuning
from tests.models.tuners.table import build_host, perturb_tuners

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
D, LAYERS = 768, 12  # ViT-B/16


def _tiny(kind: str, num_tokens: int = 3, hidden: int = 8):
    torch.manual_seed(0)
    tuner = dict(type='mmwst.PrefixTuning', num_tokens=num_tokens, hidden=hidden)
    model = build_host(kind, [tuner]).eval()
    model.init_weights()
    perturb_tuners(model)
    return model


def _prefix_kv(tuner: PrefixTuning, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's prefix keys and values, recomputed from the raw parameters."""
    encoder = tuner.encoders[str(index)]
    hidden = torch.tanh(encoder.embedding @ encoder.down.weight.T + encoder.down.bias)
    out = hidden @ encoder.up.weight.T + encoder.up.bias  # (P, 2D)
    dim = encoder.embedding.shape[1]
    return out[:, :dim], out[:, dim:]


def test_vit_b16_config_count():
    tokens, hidden = 10, 512
    per_block = tokens * D + D * hidden + hidden + hidden * 2 * D + 2 * D
    assert LAYERS * per_block == 14_272_512
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'prefix', 'vit-b16_vtab-1k.py'))
    model = MODELS.build(cfg.model)
    assert parameter_report(model).trainable_without_head == LAYERS * per_block
    # what remains once the reparameterisation is evaluated: 2 x P x D per block
    with torch.no_grad():
        kept = sum(sum(t.numel() for t in model.backbone.tuners[0].prefix(i)) for i in range(12))
    assert kept == LAYERS * 2 * tokens * D == 184_320


def test_swin_b_config_count():
    widths = [d for d, n in zip([128, 256, 512, 1024], [2, 2, 18, 2]) for _ in range(n)]
    expected = sum(10 * d + d * 512 + 512 + 512 * 2 * d + 2 * d for d in widths)
    assert expected == 18_637_824
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'prefix', 'swin-b_vtab-1k.py'))
    model = MODELS.build(cfg.model)
    assert parameter_report(model).trainable_without_head == expected


def test_vit_attention_equals_direct_computation():
    model = _tiny('vit')
    tuner, attn = model.tuners[0], model.layers[2].attn
    heads, head_dims = attn.num_heads, attn.head_dims
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        out = attn(x)
        q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).chunk(3, dim=-1)
        pk, pv = _prefix_kv(tuner, 2)
        k = torch.cat([k, pk.expand(2, -1, -1)], dim=1)  # (B, N + P, C)
        v = torch.cat([v, pv.expand(2, -1, -1)], dim=1)

        def split(t):  # (B, L, C) -> (B, heads, L, head_dims)
            return t.reshape(2, -1, heads, head_dims).transpose(1, 2)

        weights = torch.softmax(split(q) @ split(k).transpose(-2, -1) / head_dims**0.5, -1)
        assert weights.shape == (2, heads, 5, 5 + 3)
        mixed = (weights @ split(v)).transpose(1, 2).reshape(2, 5, 32)  # (B, N, C)
        expected = F.linear(mixed, attn.proj.weight, attn.proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_swin_every_window_attends_to_the_prefix():
    model = _tiny('swin')
    tuner, spec = model.tuners[0], model.blocks[1]  # a shifted-window block
    attn = spec.attn
    heads = attn.num_heads
    windows, N, C = 4, 16, 16  # 4 windows of 4 x 4 tokens, width 16
    head_dims = C // heads
    x = torch.randn(windows, N, C)
    mask = torch.zeros(windows, N, N)
    mask[1:, : N // 2, N // 2 :] = -100.0  # as Swin's shift mask: some pairs blocked
    with torch.no_grad():
        out = attn(x, mask=mask)
        q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).chunk(3, dim=-1)

        def split(t):  # (windows, L, C) -> (windows, heads, L, head_dims)
            return t.reshape(windows, -1, heads, head_dims).transpose(1, 2)

        pk, pv = _prefix_kv(tuner, 1)
        bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
        bias = bias.view(N, N, heads).permute(2, 0, 1)  # (heads, N, N)
        logits = split(q) @ split(k).transpose(-2, -1) * attn.scale + bias + mask.unsqueeze(1)
        # prefix keys: no relative position bias, never masked
        prefix_logits = split(q) @ split(pk.expand(windows, -1, -1)).transpose(-2, -1)
        weights = torch.softmax(torch.cat([logits, prefix_logits * attn.scale], dim=-1), -1)
        values = torch.cat([split(v), split(pv.expand(windows, -1, -1))], dim=2)
        mixed = (weights @ values).transpose(1, 2).reshape(windows, N, C)  # (windows, N, C)
        expected = F.linear(mixed, attn.proj.weight, attn.proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_output_format_is_unchanged():
    model = _tiny('vit')
    model.out_type = 'raw'
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 48))[0]
    assert out.shape == (2, 1 + 4 * 6, 32)  # no prefix token left in the sequence


@pytest.mark.parametrize(
    'kwargs, error',
    [
        (dict(num_tokens=0), ValueError),
        (dict(hidden=-1), ValueError),
        (dict(num_tokens=2.5), TypeError),
        (dict(hidden='512'), TypeError),
    ],
)
def test_bad_arguments_say_what_was_given(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        PrefixTuning(**kwargs)
