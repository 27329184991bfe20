"""DINOv2 (with and without registers) and CLIP ViTs as frozen hosts: with the same
random weights, their features equal timm's, plain and tuned; files that do not fit are
refused naming the argument that would fit; DINOv2-B/L counts."""

from __future__ import annotations

import os.path as osp

import pytest
import torch

from mmwst.models.backbones import TunedVisionTransformer
from tests.helpers import REPO

timm = pytest.importorskip('timm')

#: timm model -> the mmwst host arguments that build it (the rest comes from the file)
HOSTS = {
    'vit_small_patch14_dinov2': dict(arch='dinov2-s'),
    'vit_small_patch14_reg4_dinov2': dict(arch='dinov2-s'),
    'vit_base_patch16_clip_224': dict(arch='b', patch_size=16, norm_cfg=dict(type='LN', eps=1e-5)),
}
SIZE = 224  # both sides built at this size: no position-embedding resampling


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Every weight away from its init: layer scales near 1 (not 1e-5), biases and norm
    shifts non-zero, so that every part changes the features."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith('gamma'):
                p.copy_(1 + 0.1 * noise)
            elif p.dim() > 1:
                p.copy_(0.05 * noise)
            else:
                base = 1.0 if 'norm' in name and name.endswith('weight') else 0.0
                p.copy_(base + 0.1 * noise)


@pytest.fixture(scope='module', params=list(HOSTS))
def timm_file(request, tmp_path_factory):
    name = request.param
    model = timm.create_model(name, pretrained=False, img_size=SIZE, num_classes=0).eval()
    _randomise(model, seed=len(name))
    path = tmp_path_factory.mktemp('timm') / f'{name}.pth'
    torch.save(model.state_dict(), path)
    return name, model, str(path)


def _host(name: str, path: str, **kwargs) -> TunedVisionTransformer:
    host = TunedVisionTransformer(
        img_size=SIZE, pretrained=path, out_type='raw', **HOSTS[name], **kwargs
    )
    host.init_weights()
    return host.eval()


@pytest.mark.parametrize('tuned', [False, True], ids=['plain', 'lora'])
def test_features_equal_timm(timm_file, tuned):
    name, reference, path = timm_file
    tuners = [dict(type='mmwst.LoRA', rank=4)] if tuned else []
    host = _host(name, path, tuners=tuners)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.forward_features(x)  # every token, after the final norm
        got = host(x)[0]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_layout_comes_from_the_file(timm_file):
    name, reference, path = timm_file
    host = _host(name, path)
    assert host.num_register_tokens == getattr(reference, 'num_reg_tokens', 0)
    has_scale = 'ls1.gamma' in dict(reference.blocks[0].named_parameters(prefix='')).keys() or (
        hasattr(reference.blocks[0].ls1, 'gamma')
    )
    assert hasattr(host.layers[0].attn, 'gamma1') and (
        isinstance(host.layers[0].attn.gamma1, torch.nn.Identity) is not has_scale
    )
    assert (not isinstance(host.pre_norm, torch.nn.Identity)) is ('clip' in name)
    assert (host.patch_embed.projection.bias is None) is ('clip' in name)
    # outputs that drop the prefix skip the registers too
    featmap = TunedVisionTransformer(
        img_size=SIZE, pretrained=path, out_type='featmap', **HOSTS[name]
    )
    featmap.init_weights()
    patch = HOSTS[name].get('patch_size', 14)
    with torch.no_grad():
        out = featmap.eval()(torch.randn(1, 3, SIZE, SIZE))[0]
        raw = host(torch.randn(1, 3, SIZE, SIZE))[0]
    assert out.shape == (1, host.embed_dims, SIZE // patch, SIZE // patch)
    assert raw.shape[1] == 1 + host.num_register_tokens + (SIZE // patch) ** 2


def test_a_file_the_host_would_not_fully_use_is_refused(tmp_path):
    reference = timm.create_model(
        'vit_small_patch14_reg4_dinov2', pretrained=False, img_size=SIZE, num_classes=0
    )
    path = tmp_path / 'dinov2_reg4.pth'
    torch.save(reference.state_dict(), path)
    # layer scale switched off on purpose: 24 layer-scale weights would go unused
    host = TunedVisionTransformer(
        arch='dinov2-s', img_size=SIZE, pretrained=str(path), layer_scale_init_value=0.0
    )
    with pytest.raises(ValueError) as info:
        host.init_weights()
    message = str(info.value)
    assert '24 unused' in message and 'backbone.layers.0.attn.gamma1.weight' in message
    assert 'layer_scale_init_value=1e-5' in message and str(path) in message
    # registers switched off on purpose
    host = TunedVisionTransformer(
        arch='dinov2-s', img_size=SIZE, pretrained=str(path), num_register_tokens=0
    )
    with pytest.raises(ValueError, match=r'(?s)backbone\.reg_token.*num_register_tokens='):
        host.init_weights()
    # a CLIP-style host (patch bias off) for a file that has the bias
    host = TunedVisionTransformer(
        arch='dinov2-s', img_size=SIZE, pretrained=str(path), patch_cfg=dict(bias=False)
    )
    with pytest.raises(ValueError, match=r'patch_cfg=dict\(bias=True\)'):
        host.init_weights()


def test_registers_sit_after_the_class_token_without_a_position():
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    host = TunedVisionTransformer(
        arch=arch, img_size=28, patch_size=14, num_register_tokens=3, out_type='raw'
    )
    host.init_weights()
    with torch.no_grad():
        host.reg_token.copy_(torch.arange(3 * 32, dtype=torch.float).reshape(1, 3, 32))
    tokens, ctx = host._embed_tokens(torch.randn(2, 3, 28, 28))
    assert ctx.num_prefix == 4 and tokens.shape == (2, 1 + 3 + 4, 32)
    assert torch.equal(tokens[:, 1:4], host.reg_token.expand(2, -1, -1))  # no position
    with pytest.raises(ValueError, match='non-negative integer'):
        TunedVisionTransformer(arch=arch, img_size=28, patch_size=14, num_register_tokens=-1)


#: the counts from the widths alone (D width, L layers): LoRA r=8 on q and v: 2 r (D + D)
#: per layer. RLRR per layer: qkv 2 (3D) + 3 D (one input scale per slice), proj 2 D + D,
#: fc1 2 (4D) + D, fc2 2 D + 4D, SSF after both norms 4 D - 31 D; plus SSF after the patch
#: embedding and the final norm, 4 D. WST r=2: C (D/4) 7^2 + D/4 (its 7-pixel fine branch)
#: + L (2 r D + r + D).
FORMULAS = {
    'lora': lambda L, D: 2 * 8 * 2 * D * L,
    'rlrr': lambda L, D: L * 31 * D + 4 * D,
    'wst': lambda L, D: 3 * (D // 4) * 7 * 7 + D // 4 + L * (2 * 2 * D + 2 + D),
}


def test_dinov2_counts_follow_the_formulas():
    """DINOv2-B/14 built directly (its -L counts: the count_params test below)."""

    def count(tuners):
        host = TunedVisionTransformer(arch='dinov2-b', img_size=224, tuners=tuners)
        assert host.patch_size == (14, 14)
        return sum(p.numel() for p in host.parameters() if p.requires_grad)

    assert count([dict(type='mmwst.LoRA', rank=8)]) == FORMULAS['lora'](12, 768)
    assert count([dict(type='mmwst.RLRR')]) == FORMULAS['rlrr'](12, 768)
    assert count([dict(type='mmwst.WST')]) == FORMULAS['wst'](12, 768)


def test_the_dinov2_release_layout_loads(tmp_path):
    """The DINOv2 release's own files: ``register_tokens``, a position embedding with
    the class token's row, a ``mask_token`` (training only, dropped)."""
    reference = timm.create_model(
        'vit_small_patch14_reg4_dinov2', pretrained=False, img_size=SIZE, num_classes=0
    ).eval()
    _randomise(reference, seed=3)
    state = reference.state_dict()
    release = {k: v for k, v in state.items() if k not in ('reg_token', 'pos_embed')}
    release['register_tokens'] = state['reg_token']
    # the release adds the class row to the class token; timm's file has none: zero
    release['pos_embed'] = torch.cat([torch.zeros(1, 1, 384), state['pos_embed']], dim=1)
    release['mask_token'] = torch.zeros(1, 384)
    path = tmp_path / 'dinov2_vits14_reg4_pretrain.pth'
    torch.save(release, path)
    host = TunedVisionTransformer(arch='dinov2-s', img_size=SIZE, pretrained=str(path))
    host.init_weights()
    assert host.num_register_tokens == 4
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(
            host.eval()(x)[0], reference.forward_features(x)[:, 0], rtol=0, atol=1e-5
        )


def test_swiglu_mlps_as_in_dinov2_giant(tmp_path):
    """ViT-g's SwiGLU MLPs (timm packs gate and value into fc1): a two-layer model of the
    same kind equals timm's, plain and with LoRA on every layer incl. the MLP."""
    from timm.layers import SwiGLUPacked
    from timm.models.vision_transformer import VisionTransformer

    width, hidden = 48, 128  # mmpretrain: feedforward 192 -> (192 * 2/3 + 7) // 8 * 8
    reference = VisionTransformer(
        img_size=56,
        patch_size=14,
        embed_dim=width,
        depth=2,
        num_heads=2,
        init_values=1e-5,
        mlp_ratio=2 * hidden / width,
        mlp_layer=SwiGLUPacked,
        act_layer=torch.nn.SiLU,
        num_classes=0,
    ).eval()
    _randomise(reference, seed=5)
    path = tmp_path / 'swiglu.pth'
    torch.save(reference.state_dict(), path)
    arch = dict(embed_dims=width, num_layers=2, num_heads=2, feedforward_channels=192)
    x = torch.randn(2, 3, 56, 56)
    targets = ('q', 'k', 'v', 'proj', 'fc1', 'fc2')
    for tuners in ([], [dict(type='mmwst.LoRA', rank=2, targets=targets)]):
        host = TunedVisionTransformer(
            arch=arch,
            img_size=56,
            patch_size=14,
            pretrained=str(path),
            out_type='raw',
            tuners=tuners,
        )
        host.init_weights()
        assert type(host.layers[0].ffn).__name__ == 'SwiGLUFFNFused'  # from the file
        assert host.blocks[0].fc1 is host.layers[0].ffn.w12
        with torch.no_grad():
            got, expected = host.eval()(x)[0], reference.forward_features(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ('method', 'counts'),
    [
        ('lora', (294_912, 786_432)),
        ('rlrr', (288_768, 765_952)),
        ('wst', (74_520, 160_816)),
        ('hst', (764_840, 1_360_544)),
    ],
)
def test_count_params_prints_the_dinov2_counts(method, counts, capsys):
    """tools/count_params.py on each method's VTAB-1k config with the DINOv2-B/14 and
    -L/14 hosts swapped in (docs/hosts.md)."""
    import json

    from tools.count_params import main

    for arch, expected in zip(('dinov2-b', 'dinov2-l'), counts):
        options = [f'model.backbone.arch={arch}', 'model.backbone.patch_size=14']
        options.append('model.backbone.img_size=224')
        config = osp.join(REPO, 'configs', method, 'vit-b16_vtab-1k.py')
        assert main([config, '--json', '--cfg-options', *options]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed['trainable_without_head'] == expected, (method, arch)
        if method in FORMULAS:
            layers, width = (12, 768) if arch == 'dinov2-b' else (24, 1024)
            assert expected == FORMULAS[method](layers, width)


# --- EVA-02 ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def eva02_file(tmp_path_factory):
    reference = timm.create_model('eva02_tiny_patch14_224', pretrained=False, num_classes=0)
    _randomise(reference.eval(), seed=11)
    folder = tmp_path_factory.mktemp('eva02')
    state = reference.state_dict()
    torch.save(state, folder / 'eva02_tiny.pth')
    # the same without fc_norm: every token is compared, not only the pooled feature
    torch.save({k: v for k, v in state.items() if not k.startswith('fc_norm')}, folder / 'raw.pth')
    return reference, folder


@pytest.mark.parametrize('tuned', [False, True], ids=['plain', 'lora'])
def test_eva02_features_equal_timm(eva02_file, tuned):
    from mmwst.models.backbones import TunedEVA02

    reference, folder = eva02_file
    tuners = [dict(type='mmwst.LoRA', rank=4, targets=('q', 'k', 'v'))] if tuned else []
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    # the MIM file ends with fc_norm: pooled patches -> fc_norm is the host's output
    pooled = TunedEVA02(arch='eva02-t', pretrained=str(folder / 'eva02_tiny.pth'), tuners=tuners)
    pooled.init_weights()
    assert pooled.out_type == 'avg_featmap' and not pooled.final_norm
    raw = TunedEVA02(
        arch='eva02-t', pretrained=str(folder / 'raw.pth'), out_type='raw', tuners=tuners
    )
    raw.init_weights()
    with torch.no_grad():
        tokens = reference.forward_features(x)
        torch.testing.assert_close(raw.eval()(x)[0], tokens, rtol=1e-5, atol=1e-5)
        expected = reference.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(pooled.eval()(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_eva02_separate_qkv_and_sub_ln_equal_timm(tmp_path):
    """The layout of the larger EVA-02 files: separate q / k / v projections (no key
    bias), SwiGLU with separate gate and value and a norm inside (sub-LN), a norm inside
    attention, a final norm; prefix tuning's extra keys are not rotated."""
    from timm.models.eva import Eva

    from mmwst.models.backbones import TunedEVA02

    reference = Eva(
        img_size=56,
        patch_size=14,
        embed_dim=64,
        depth=2,
        num_heads=2,
        qkv_fused=False,
        mlp_ratio=4 * 2 / 3,
        swiglu_mlp=True,
        scale_mlp=True,
        scale_attn_inner=True,
        use_rot_pos_emb=True,
        ref_feat_shape=(4, 4),
        global_pool='token',
        num_classes=0,
    ).eval()
    _randomise(reference, seed=13)
    path = tmp_path / 'eva02_separate.pth'
    torch.save(reference.state_dict(), path)
    arch = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=170)
    host = TunedEVA02(arch=arch, img_size=56, pretrained=str(path), out_type='raw')
    host.init_weights()
    assert host.sub_ln and host.final_norm
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(
            host.eval()(x)[0], reference.forward_features(x), rtol=1e-5, atol=1e-5
        )
    # a file with what the host cannot hold is refused, naming the key
    state = reference.state_dict()
    state['blocks.0.attn.k_proj.bias'] = torch.zeros(64)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r'blocks\.0\.attn\.k_proj\.bias'):
        TunedEVA02(arch=arch, img_size=56, pretrained=str(path))


def test_eva02_rope_leaves_the_prefix_alone():
    """Rotary embeddings rotate the last h*w tokens only: tokens in front (class token,
    prompts, meta tokens) pass unchanged, and a rotation keeps every pair's length."""
    from mmwst.models.backbones.eva02 import GridRoPE

    rope = GridRoPE(head_dims=8, ref_grid=(2, 3))
    rope.set_grid((2, 3))
    x = torch.randn(1, 2, 4 + 6, 8)  # 4 prefix tokens, 6 patches
    y = rope.rotate(x)
    assert torch.equal(y[:, :, :4], x[:, :, :4])
    assert torch.equal(y[:, :, 4], x[:, :, 4])  # position (0, 0): angle zero
    pairs = lambda t: t.reshape(*t.shape[:-1], 4, 2).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pairs(y), pairs(x))
    assert not torch.allclose(y[:, :, 5:], x[:, :, 5:])


@pytest.mark.parametrize('layers', [24, 40])
def test_hst_stage_mapping_on_deep_hosts(layers):
    """HST on DINOv2-L (24 layers) and -g (40): four stages of L/4 layers each, every
    layer feeding one side block; the count follows (tiny widths here)."""
    arch = dict(embed_dims=32, num_layers=layers, num_heads=2, feedforward_channels=64)
    tuner = dict(type='mmwst.HST', channels=[8, 12, 16, 32], num_heads=[1, 2, 2, 4])
    host = TunedVisionTransformer(arch=arch, img_size=28, patch_size=14, tuners=[tuner])
    hst = host.tuners[0]
    assert hst.side.depths == (layers // 4,) * 4
    trainable = sum(p.numel() for p in host.parameters() if p.requires_grad)
    assert trainable == hst.param_count(host)
    out = host(torch.randn(1, 3, 28, 42))[0]
    assert torch.isfinite(out).all()


# --- SAM's image encoder -----------------------------------------------------------------
@pytest.fixture(scope='module')
def sam_file(tmp_path_factory):
    """timm's samvit_base_patch16 at 256 x 256: a 16 x 16 grid, windows of 14 (padded)
    in 8 blocks, global attention in 4, the convolutional neck."""
    reference = timm.create_model(
        'samvit_base_patch16', pretrained=False, img_size=256, num_classes=0
    ).eval()
    _randomise(reference, seed=17)
    with torch.no_grad():  # the neck's LayerNorm2d scales near 1, as the blocks' norms
        for name in ('neck.1.weight', 'neck.3.weight'):
            reference.get_parameter(name).add_(1.0)
    path = tmp_path_factory.mktemp('sam') / 'samvit_base.pth'
    torch.save(reference.state_dict(), path)
    return reference, path


@pytest.mark.parametrize('tuned', [False, True], ids=['plain', 'lora'])
def test_sam_image_encoder_equals_timm(sam_file, tuned):
    """The neck's output; timm runs its windowed attention as one fused call with the
    relative-position bias, mmpretrain as explicit products: equal within 5e-5 on
    outputs of magnitude about 5 (1e-5 relative)."""
    from mmwst.models.backbones import TunedSAMViT

    reference, path = sam_file
    tuners = [dict(type='mmwst.LoRA', rank=4)] if tuned else []
    host = TunedSAMViT(arch='base', img_size=256, pretrained=str(path), tuners=tuners)
    host.init_weights()
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(
            host.eval()(x)[0], reference.forward_features(x), rtol=1e-5, atol=5e-5
        )


def test_sam_release_layout_and_methods_that_add_tokens_are_refused(sam_file, tmp_path):
    from mmwst.models.backbones import TunedSAMViT
    from mmwst.models.tuners.base import UnsupportedHostError

    reference, path = sam_file
    state = torch.load(path, weights_only=True)
    # the release: everything under image_encoder., MLPs named lin1 / lin2, and the
    # prompt encoder and mask decoder beside it
    renamed = {k.replace('.mlp.fc1.', '.mlp.lin1.').replace('.mlp.fc2.', '.mlp.lin2.'): v
               for k, v in state.items()}  # yapf: disable
    release = {'image_encoder.' + k: v for k, v in renamed.items()}
    release['prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'] = torch.zeros(2, 128)
    release['mask_decoder.iou_token.weight'] = torch.zeros(1, 256)
    torch.save(release, tmp_path / 'sam_vit_b.pth')
    host = TunedSAMViT(arch='base', img_size=256, pretrained=str(tmp_path / 'sam_vit_b.pth'))
    host.init_weights()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(
            host.eval()(x)[0], reference.forward_features(x), rtol=1e-5, atol=5e-5
        )
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64,
                global_attn_indexes=[1])  # yapf: disable
    for tuner in (dict(type='mmwst.VPT'), dict(type='mmwst.PrefixTuning'), dict(type='mmwst.HST')):
        with pytest.raises(UnsupportedHostError, match="'sam' host"):
            TunedSAMViT(arch=arch, img_size=32, patch_size=8, window_size=2, tuners=[tuner])
