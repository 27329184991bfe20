"""PATT's own math, its ViT-B/16 / Swin-B counts and the Swin-BAPAT combination."""

from __future__ import annotations

import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmwst.models.tuners.patt  # noqa: F401  (registers PATT)
from mmwst.models.param_report import parameter_report
from mmwst.models.tuners.patt import PATT
from tests.models.tuners.table import build_host, perturb_tuners

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
D, LAYERS = 768, 12  # ViT-B/16
SWIN_B = dict(widths=[128, 256, 512, 1024], depths=[2, 2, 18, 2])  # Swin-B stages
SLICES = {'q': 0, 'k': 1, 'v': 2}


def _vit_b16_patt(rank: int, slots: int = 2) -> int:
    """W_down D x r, b_down r, W_up r x (slots*D), b_up slots*D, in every block."""
    return LAYERS * (D * rank + rank + rank * slots * D + slots * D)


def _swin_b_widths() -> list[int]:
    return [d for d, n in zip(SWIN_B['widths'], SWIN_B['depths']) for _ in range(n)]


def _build_config(name: str, device: str = 'cpu', **backbone):
    """Build a config's model through mmengine (``device='meta'``: shapes only, fast)."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    cfg.model.backbone.update(backbone)
    with torch.device(device):
        return MODELS.build(cfg.model)


def _tiny(kind: str, **kwargs):
    torch.manual_seed(0)
    model = build_host(kind, [dict(type='mmwst.PATT', **kwargs)]).eval()
    model.init_weights()
    perturb_tuners(model)  # biases away from their init as well
    return model


# ---- counts -----------------------------------------------------------------------------
def test_vit_b16_config_count():
    model = _build_config('patt/vit-b16_vtab-1k.py')  # r = 8, kv
    assert parameter_report(model).trainable_without_head == _vit_b16_patt(8) == 239_712


@pytest.mark.parametrize(
    'rank, mode, expected', [(16, 'kv', 460_992), (128, 'kv', 3_558_912), (8, 'qkv', 322_656)]
)
def test_vit_b16_counts_for_other_ranks_and_modes(rank, mode, expected):
    tuner = dict(type='mmwst.PATT', rank=rank, scale=0.8, mode=mode)
    model = _build_config('patt/vit-b16_vtab-1k.py', device='meta', tuners=[tuner])
    assert expected == _vit_b16_patt(rank, len(mode))
    assert parameter_report(model).trainable_without_head == expected


def test_swin_b_patt_config_count():
    expected = sum(d * 8 + 8 + 8 * 2 * d + 2 * d for d in _swin_b_widths())
    assert expected == 313_024
    model = _build_config('patt/swin-b_vtab-1k.py')
    assert parameter_report(model).trainable_without_head == expected


def test_swin_bapat_config_count():
    r, bottleneck = 128, 64
    expected = sum(
        (d * r + r + r * 2 * d + 2 * d) + (2 * d * bottleneck + bottleneck + d)
        for d in _swin_b_widths()
    )
    assert expected == 6_201_088
    model = _build_config('swin_bapat/swin-b_vtab-1k.py')
    names = [type(t).__name__ for t in model.backbone.tuners]
    assert names == ['PATT', 'AdaptFormer']
    patt = model.backbone.tuners[0]
    assert (patt.rank, patt.scale, patt.mode) == (128, 0.8, 'kv')
    assert parameter_report(model).trainable_without_head == expected


# ---- math -------------------------------------------------------------------------------
def test_vit_attention_equals_direct_computation():
    s = 0.7
    model = _tiny('vit', rank=3, scale=s)
    patt, block = model.tuners[0], model.layers[1]
    attn = block.attn
    heads, head_dims = attn.num_heads, attn.head_dims
    x = block.ln1(torch.randn(2, 7, 32))
    with torch.no_grad():
        out = attn(x)
        q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).chunk(3, dim=-1)
        down, up = patt.down['1'], patt.up['1']
        hidden = torch.tanh(x @ down.weight.T + down.bias)
        dk, dv = (hidden @ up.weight.T + up.bias).chunk(2, dim=-1)
        k, v = k + s * dk, v + s * dv

        def split(t):  # (B, N, C) -> (B, heads, N, head_dims)
            return t.reshape(2, 7, heads, head_dims).transpose(1, 2)

        weights = torch.softmax(split(q) @ split(k).transpose(-2, -1) / head_dims**0.5, -1)
        mixed = (weights @ split(v)).transpose(1, 2).reshape(2, 7, 32)  # (B, N, C)
        expected = F.linear(mixed, attn.proj.weight, attn.proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def _captured_qkv(model, block: int, image):
    """The (hooked) qkv output of one block and what the frozen layer alone gives."""
    qkv = model.blocks[block].qkv
    seen = {}
    handle = qkv.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        model(image)
    handle.remove()
    return seen['x'], seen['out'], F.linear(seen['x'], qkv.weight, qkv.bias)


def test_swin_window_qkv_changes_by_exactly_s_delta():
    model = _tiny('swin', rank=3, scale=0.8)
    patt = model.tuners[0]
    for block in (1, 2):  # a shifted block of stage 0, a block of stage 1
        x, out, plain = _captured_qkv(model, block, torch.randn(1, 3, 64, 96))
        assert x.shape[1] == 16  # (windows * B, 4 x 4 window tokens, C)
        dim = x.shape[-1]
        with torch.no_grad():
            delta = patt.delta(str(block), x)  # (windows * B, N, 2 * C)
        assert torch.equal(out[..., :dim], plain[..., :dim])  # queries untouched
        torch.testing.assert_close(out[..., dim:] - plain[..., dim:], 0.8 * delta)


@pytest.mark.parametrize('kind', ['vit', 'swin'])
@pytest.mark.parametrize('mode', ['kv', 'qv', 'qk', 'qkv'])
def test_each_mode_changes_only_its_slices(mode, kind):
    model = _tiny(kind, rank=2, mode=mode)
    image = torch.randn(1, 3, 32, 32) if kind == 'vit' else torch.randn(1, 3, 64, 64)
    _, out, plain = _captured_qkv(model, 1, image)
    dim = out.shape[-1] // 3
    for slot, i in SLICES.items():
        part = slice(i * dim, (i + 1) * dim)
        assert torch.equal(out[..., part], plain[..., part]) is (slot not in mode), slot


def test_not_identity_at_init():
    """PATT's up projection is not zero-initialised (V-PETL): a fresh PATT already shifts
    the keys and values, so the output differs from the frozen model's."""
    torch.manual_seed(0)
    model = build_host('vit', [dict(type='mmwst.PATT', rank=2)]).eval()
    model.init_weights()
    assert all(p.abs().sum() > 0 for p in model.tuners.parameters())  # default init, not zero
    plain = build_host('vit', []).eval()
    with model.full_state_dict():
        host = {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
    plain.load_state_dict(host)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        difference = (model(x)[0] - plain(x)[0]).abs().max()
    assert difference > 1e-3


@pytest.mark.parametrize(
    'kwargs, error',
    [
        (dict(mode='kq'), ValueError),
        (dict(mode='v'), ValueError),
        (dict(rank=0), ValueError),
        (dict(rank=8.0), TypeError),
        (dict(scale='0.8'), TypeError),
    ],
)
def test_bad_arguments_say_what_was_given(kwargs, error):
    with pytest.raises(error, match=repr(next(iter(kwargs.values()))).strip("'")):
        PATT(**kwargs)
