"""Mona against the authors' release, written out here independently: the adapter's
math, its two places in ViT and Swin blocks, the grid and the tokens off it, the
counts, and what it refuses."""

import pytest
import torch
import torch.nn.functional as F

from mmwst.models.backbones import TunedSAMViT, TunedSwinTransformer, TunedVisionTransformer
from mmwst.models.tuners import Mona, UnsupportedHostError
from mmwst.models.tuners.mona import MonaLayer
from tests.models.tuners.table import SWIN_ARCH, TOKEN_HOSTS, VIT_ARCH, Case, blocks, build_host

# ---- the row in the shared tuner table (tests/models/tuners/table.py) ----
BOTTLENECK = 8


def _mona(kind: str) -> int:
    """Per adapter, counted layer by layer as the release builds it: project1 (d x r + r),
    project2 (r x d + d), three depthwise convolutions with bias (r (9 + 25 + 49) + 3 r),
    the 1x1 projector (r x r + r), the LayerNorm (2 d), gamma and gamma_x (d each); two
    adapters per block."""
    r = BOTTLENECK
    per = lambda d: (d * r + r) + (r * d + d) + r * (9 + 25 + 49) + 3 * r + (r * r + r) + 4 * d  # noqa: E731
    return sum(2 * per(d) for d, _ in blocks(kind))


CASES = [
    Case(
        'mona',
        [dict(type='mmwst.Mona', bottleneck=BOTTLENECK)],
        False,
        False,
        _mona,
        hosts=TOKEN_HOSTS,
    )
]


def release_mona(layer: MonaLayer, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """The release's ``Mona.forward`` (eval mode) with ``layer``'s weights: scaled LN
    input, ``project1``, tokens to ``(b, c, h, w)`` via ``reshape(b, h, w, c)``, MonaOp
    (three depthwise convolutions averaged plus identity, then plus a 1x1 projector),
    back, GELU, ``project2``, residual."""
    identity = x
    x = F.layer_norm(x, x.shape[-1:], layer.norm.weight, layer.norm.bias) * layer.gamma
    x = x + identity * layer.gamma_x
    p = F.linear(x, layer.down.weight, layer.down.bias)
    b, n, c = p.shape
    h, w = hw
    p = p.reshape(b, h, w, c).permute(0, 3, 1, 2)
    convs = [
        F.conv2d(p, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2, groups=c)
        for conv in layer.dw
    ]
    q = (convs[0] + convs[1] + convs[2]) / 3.0 + p
    q = q + F.conv2d(q, layer.mix.weight, layer.mix.bias)
    q = q.permute(0, 2, 3, 1).reshape(b, n, c)
    return identity + F.linear(F.gelu(q), layer.up.weight, layer.up.bias)


def _perturbed(layer: MonaLayer) -> MonaLayer:
    """Every parameter moved off its init (gamma 1e-6 would hide the LN path)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return layer.eval()


def test_the_adapter_equals_the_release():
    torch.manual_seed(0)
    layer = _perturbed(MonaLayer(24, bottleneck=8))
    x = torch.randn(2, 5 * 7, 24)
    torch.testing.assert_close(layer(x, (5, 7)), release_mona(layer, x, (5, 7)))
    # the grid is rows of w tokens: a transposed grid gives another result
    assert not torch.allclose(layer(x, (7, 5)), release_mona(layer, x, (5, 7)))


def test_init_is_the_releases():
    layer = MonaLayer(16, bottleneck=8)
    torch.testing.assert_close(layer.gamma, torch.full((16,), 1e-6))
    torch.testing.assert_close(layer.gamma_x, torch.ones(16))
    for linear in (layer.down, layer.up):
        assert linear.bias.abs().max() == 0
        assert 0.01 < linear.weight.std() < 0.03  # N(0, 0.02), cut at +-2 as timm's is
    assert layer.drop.p == 0.1


def _tuned_host(kind: str):
    """The tiny host of ``kind`` with Mona (r = 8), every adapter moved off its init, in
    eval mode; and its Mona."""
    torch.manual_seed(0)
    model = build_host(kind, [dict(type='mmwst.Mona', bottleneck=8)])
    model.init_weights()
    mona = model.tuners[0]
    for layer in (*mona.after_attn, *mona.after_mlp):
        _perturbed(layer)
    return model.eval(), mona


def _record_blocks(model, blocks):
    """Each block's input (args) and output, from hooks on the blocks."""
    seen = []
    for block in blocks:
        block.register_forward_hook(lambda m, args, out: seen.append((args, out)))
    return seen


def test_two_places_in_each_vit_block_and_the_class_token_untouched():
    """Block by block: out = Mona_1(x + attn(ln1(x))) + MLP(ln2(...)), and the next
    block's input is Mona_2(out); the class token and the register tokens pass both
    adapters unchanged."""
    model, mona = _tuned_host('dinov2')
    seen = _record_blocks(model, model.layers)
    image = torch.randn(2, 3, 56, 84)
    model(image)
    prefix, grid = 1 + 2, (4, 6)  # class token, 2 registers; 56x84 at patch 14
    for i, ((x,), out) in enumerate(seen):
        layer = model.layers[i]
        x1 = x + layer.attn(layer.ln1(x))
        patches = release_mona(mona.after_attn[i], x1[:, prefix:], grid)
        x1 = torch.cat([x1[:, :prefix], patches], dim=1)
        expected = layer.ffn.forward(layer.ln2(x1), identity=x1)  # without the hooks
        torch.testing.assert_close(out, expected)
        if i + 1 < len(seen):
            following = seen[i + 1][0][0]
            torch.testing.assert_close(following[:, :prefix], out[:, :prefix], rtol=0, atol=0)
            torch.testing.assert_close(
                following[:, prefix:], release_mona(mona.after_mlp[i], out[:, prefix:], grid)
            )


def test_two_places_in_each_swin_block_on_each_stages_grid():
    model, mona = _tuned_host('swin')
    blocks = [block for stage in model.stages for block in stage.blocks]
    seen = _record_blocks(model, blocks)
    model(torch.randn(2, 3, 64, 96))
    grids = [(16, 24)] * 2 + [(8, 12)] * 2  # patch 4, then merged once
    for i, ((x, hw), out) in enumerate(seen):
        block = blocks[i]
        assert tuple(hw) == grids[i]
        x1 = x + block.attn(block.norm1(x), hw)
        x1 = release_mona(mona.after_attn[i], x1, grids[i])
        torch.testing.assert_close(out, block.ffn.forward(block.norm2(x1), identity=x1))
        if i + 1 < len(seen) and grids[i + 1] == grids[i]:
            expected = release_mona(mona.after_mlp[i], out, grids[i])
            torch.testing.assert_close(seen[i + 1][0][0], expected)


@pytest.mark.parametrize('kind', ['vit', 'swin'])
def test_with_zero_up_projections_the_frozen_model_comes_back_exactly(kind):
    torch.manual_seed(0)
    tuned = build_host(kind, [dict(type='mmwst.Mona', bottleneck=8)])
    tuned.init_weights()
    frozen = build_host(kind, [])
    with tuned.full_state_dict():  # the same random host weights
        host = {k: v for k, v in tuned.state_dict().items() if not k.startswith('tuners.')}
    frozen.load_state_dict(host)
    mona = tuned.tuners[0]
    with torch.no_grad():
        for layer in (*mona.after_attn, *mona.after_mlp):
            layer.up.weight.zero_()
            layer.up.bias.zero_()
    frozen.eval(), tuned.eval()
    image = torch.randn(2, 3, 64, 64)
    for a, b in zip(tuned(image), frozen(image)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and with the init's up-projections it is not the frozen model (as in the release)
    for layer in (*mona.after_attn, *mona.after_mlp):
        layer.reset_parameters()
    assert not torch.allclose(tuned(image)[0], frozen(image)[0])


def test_published_counts_vit_b16_and_swin_b():
    """ViT-B/16: 24 adapters of 133 x 768 + 9,728; Swin-B: two per block over widths
    128 / 256 / 512 / 1024 and depths 2 / 2 / 18 / 2."""
    vit = TunedVisionTransformer(
        arch='b', img_size=224, patch_size=16, tuners=[dict(type='mmwst.Mona')]
    )
    assert sum(p.numel() for p in vit.parameters() if p.requires_grad) == 2_684_928
    swin = TunedSwinTransformer(arch='base', img_size=224, tuners=[dict(type='mmwst.Mona')])
    widths = [128] * 2 + [256] * 2 + [512] * 18 + [1024] * 2
    assert sum(2 * (133 * d + 9_728) for d in widths) == 3_667_456
    assert sum(p.numel() for p in swin.parameters() if p.requires_grad) == 3_667_456


def test_sam_is_refused_with_the_reason():
    with pytest.raises(UnsupportedHostError, match='windows'):
        TunedSAMViT(
            arch=dict(VIT_ARCH, global_attn_indexes=[1, 3]),
            img_size=32,
            patch_size=8,
            window_size=2,
            out_channels=32,
            tuners=[dict(type='mmwst.Mona', bottleneck=8)],
        )


def test_tokens_that_do_not_fit_the_grid_are_refused():
    with pytest.raises(RuntimeError, match=r'17 tokens, expected 1 in front of a 4x5 grid'):
        Mona._on_grid(MonaLayer(8, 4), torch.randn(1, 17, 8), 1, (4, 5))
    assert SWIN_ARCH  # the table's Swin is the one the Swin test builds


def test_mona_has_a_shapes_demo_row():
    """The detector and segmentor of the shapes demo with Mona (checked, with every
    method's shapes row, in tests/dense/test_dense_configs.py)."""
    from tests.dense.test_dense_configs import SHAPES_ROWS

    assert {
        'configs/mona/vit-t_shapes_cascade_mask_rcnn.py',
        'configs/mona/vit-t_shapes_upernet.py',
    } <= set(SHAPES_ROWS)
