"""Checkpoint conversion to mmpretrain VisionTransformer names.

Every test builds its own tiny random weights; nothing is downloaded.
"""

import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer as MMViT
from mmpretrain.models.utils import resize_pos_embed as mm_resize_pos_embed
from timm.models.vision_transformer import VisionTransformer as TimmViT

from mmwst.models.backbones.convert import (
    adapt_pos_embed,
    check_state_dict,
    convert_vit,
    convert_vit_report,
    detect_format,
    load_vit_weights,
    read_checkpoint,
    resize_pos_embed,
)
from tests.npz_writer import vit_to_npz

EMBED, DEPTH, HEADS, PATCH, IMG = 64, 2, 4, 16, 48  # a 3x3 patch grid
HEAD_DIMS = EMBED // HEADS
GRID = IMG // PATCH
ATOL = 1e-5
REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def build_timm(num_classes: int = 7) -> TimmViT:
    model = TimmViT(
        img_size=IMG,
        patch_size=PATCH,
        embed_dim=EMBED,
        depth=DEPTH,
        num_heads=HEADS,
        mlp_ratio=4.0,
        qkv_bias=True,
        class_token=True,
        global_pool='token',
        num_classes=num_classes,
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if 'norm' in name and name.endswith('weight'):
                param.copy_(1.0 + 0.3 * noise)  # random LayerNorm scales around 1
            elif name in ('cls_token', 'pos_embed'):
                param.copy_(0.5 * noise)
            else:
                param.copy_(0.1 * noise)
    return model.eval()


def build_mm(img_size: int = IMG, **kwargs) -> MMViT:
    arch = {
        'embed_dims': EMBED,
        'num_layers': DEPTH,
        'num_heads': HEADS,
        'feedforward_channels': 4 * EMBED,
    }
    options = {'out_type': 'raw', 'final_norm': True, **kwargs}
    model = MMViT(arch=arch, img_size=img_size, patch_size=PATCH, **options)
    model.eval()  # mmpretrain's BaseBackbone.train() returns None, so no chaining
    return model


def mm_features(state_dict: dict, images: torch.Tensor) -> torch.Tensor:
    model = build_mm()
    incompatible = model.load_state_dict(state_dict, strict=True)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    with torch.no_grad():
        return model(images)[0]


@pytest.fixture(scope='module')
def timm_model() -> TimmViT:
    return build_timm()


@pytest.fixture(scope='module')
def timm_state(timm_model) -> dict:
    return {k: v.clone() for k, v in timm_model.state_dict().items()}


@pytest.fixture(scope='module')
def converted(timm_state) -> dict:
    return convert_vit(timm_state)


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    return torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope='module')
def timm_features(timm_model, images) -> torch.Tensor:
    with torch.no_grad():
        return timm_model.forward_features(images)


def assert_same_state(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape, key
        assert torch.equal(actual[key], value), key


# --- (a) timm -> mmpretrain -------------------------------------------------------------
def test_timm_matches_mmpretrain_features(timm_model, timm_state, images, timm_features):
    assert timm_model.norm.eps == 1e-6 and timm_model.blocks[0].norm1.eps == 1e-6
    result = convert_vit_report(timm_state)
    assert result.fmt == 'timm'
    assert sorted(result.ignored) == ['head.bias', 'head.weight']
    expected_names = set(build_mm().state_dict())
    assert set(result.state_dict) == expected_names
    features = mm_features(result.state_dict, images)
    assert features.shape == (2, 1 + GRID * GRID, EMBED)
    assert timm_features.shape == features.shape
    torch.testing.assert_close(features, timm_features, atol=ATOL, rtol=0)


def test_feature_check_catches_a_wrong_mapping(converted, images, timm_features):
    """Swapping the query and key rows must change the features (the test can fail)."""
    broken = dict(converted)
    qkv = converted['layers.0.attn.qkv.weight']
    broken['layers.0.attn.qkv.weight'] = torch.cat(
        [qkv[EMBED : 2 * EMBED], qkv[:EMBED], qkv[2 * EMBED :]]
    )
    features = mm_features(broken, images)
    assert (features - timm_features).abs().max() > 1e-3


def test_timm_prefixes_and_wrappers(timm_state, converted):
    for wrapped in (
        {f'module.{k}': v for k, v in timm_state.items()},
        {f'model.{k}': v for k, v in timm_state.items()},
        {'state_dict': dict(timm_state), 'meta': {'epoch': 3}},
    ):
        assert detect_format(wrapped) == 'timm'
        assert_same_state(convert_vit(wrapped), converted)


def test_timm_unsupported_key_raises(timm_state):
    state = dict(timm_state)
    state['blocks.0.attn.q_norm.weight'] = torch.ones(HEAD_DIMS)
    with pytest.raises(ValueError, match=r'blocks\.0\.attn\.q_norm\.weight'):
        convert_vit(state)


def test_mmpretrain_state_passes_through(converted):
    checkpoint = {
        'meta': {'epoch': 1},
        'state_dict': {
            **{f'backbone.{k}': v for k, v in converted.items()},
            'head.layers.head.weight': torch.zeros(7, EMBED),
            'head.layers.head.bias': torch.zeros(7),
        },
    }
    assert detect_format(checkpoint) == 'mmpretrain'
    result = convert_vit_report(checkpoint)
    assert sorted(result.ignored) == ['head.layers.head.bias', 'head.layers.head.weight']
    assert_same_state(result.state_dict, converted)
    assert_same_state(convert_vit(converted), converted)


# --- (b) Google npz ---------------------------------------------------------------------
def google_arrays(converted: dict) -> dict:
    arrays = vit_to_npz(converted, num_heads=HEADS)
    arrays['head/kernel'] = np.zeros((EMBED, 7), np.float32)
    arrays['head/bias'] = np.zeros(7, np.float32)
    arrays['pre_logits/kernel'] = np.zeros((EMBED, EMBED), np.float32)
    arrays['pre_logits/bias'] = np.zeros(EMBED, np.float32)
    return arrays


def test_vit_to_npz_writes_google_layout(converted):
    arrays = vit_to_npz(converted, num_heads=HEADS)
    block = 'Transformer/encoderblock_1/'
    attn = block + 'MultiHeadDotProductAttention_1/'
    shapes = {
        'embedding/kernel': (PATCH, PATCH, 3, EMBED),
        'embedding/bias': (EMBED,),
        'cls': (1, 1, EMBED),
        'Transformer/posembed_input/pos_embedding': (1, 1 + GRID * GRID, EMBED),
        block + 'LayerNorm_0/scale': (EMBED,),
        block + 'LayerNorm_2/bias': (EMBED,),
        attn + 'query/kernel': (EMBED, HEADS, HEAD_DIMS),
        attn + 'value/bias': (HEADS, HEAD_DIMS),
        attn + 'out/kernel': (HEADS, HEAD_DIMS, EMBED),
        attn + 'out/bias': (EMBED,),
        block + 'MlpBlock_3/Dense_0/kernel': (EMBED, 4 * EMBED),
        block + 'MlpBlock_3/Dense_1/kernel': (4 * EMBED, EMBED),
        'Transformer/encoder_norm/scale': (EMBED,),
    }
    for key, shape in shapes.items():
        assert arrays[key].shape == shape, key
    assert len(arrays) == 6 + DEPTH * 16


def test_npz_round_trip(tmp_path, converted, images, timm_features):
    path = tmp_path / 'ViT-T_16.npz'
    np.savez(path, **google_arrays(converted))
    source = read_checkpoint(str(path))
    assert detect_format(source) == 'npz'
    result = convert_vit_report(source)
    assert sorted(result.ignored) == [
        'head/bias',
        'head/kernel',
        'pre_logits/bias',
        'pre_logits/kernel',
    ]
    loaded = load_vit_weights(str(path))
    assert_same_state(loaded, converted)
    torch.testing.assert_close(mm_features(loaded, images), timm_features, atol=ATOL, rtol=0)


def test_npz_entries_land_in_the_right_places(converted):
    arrays = vit_to_npz(converted, num_heads=HEADS)
    attn = 'Transformer/encoderblock_1/MultiHeadDotProductAttention_1/'
    mlp = 'Transformer/encoderblock_1/MlpBlock_3/'
    size = EMBED * HEADS * HEAD_DIMS
    kernels = {
        part: (np.arange(size, dtype=np.float32) + offset * size).reshape(EMBED, HEADS, HEAD_DIMS)
        for offset, part in enumerate(('query', 'key', 'value'))
    }
    biases = {
        part: -(np.arange(EMBED, dtype=np.float32) + offset * EMBED).reshape(HEADS, HEAD_DIMS)
        for offset, part in enumerate(('query', 'key', 'value'))
    }
    for part in kernels:
        arrays[f'{attn}{part}/kernel'] = kernels[part]
        arrays[f'{attn}{part}/bias'] = biases[part]
    out_kernel = np.arange(size, dtype=np.float32).reshape(HEADS, HEAD_DIMS, EMBED)
    arrays[f'{attn}out/kernel'] = out_kernel
    fc1 = np.arange(EMBED * 4 * EMBED, dtype=np.float32).reshape(EMBED, 4 * EMBED)
    arrays[f'{mlp}Dense_0/kernel'] = fc1
    patch = np.arange(PATCH * PATCH * 3 * EMBED, dtype=np.float32).reshape(PATCH, PATCH, 3, EMBED)
    arrays['embedding/kernel'] = patch

    state = convert_vit(arrays)
    qkv_w = state['layers.1.attn.qkv.weight'].numpy()
    qkv_b = state['layers.1.attn.qkv.bias'].numpy()
    proj = state['layers.1.attn.proj.weight'].numpy()
    assert qkv_w.shape == (3 * EMBED, EMBED) and proj.shape == (EMBED, EMBED)
    for offset, part in enumerate(('query', 'key', 'value')):
        for d in range(EMBED):
            for h in range(HEADS):
                for j in range(HEAD_DIMS):
                    row = offset * EMBED + h * HEAD_DIMS + j
                    assert qkv_w[row, d] == kernels[part][d, h, j]
                    assert proj[d, h * HEAD_DIMS + j] == out_kernel[h, j, d]
        for h in range(HEADS):
            for j in range(HEAD_DIMS):
                assert qkv_b[offset * EMBED + h * HEAD_DIMS + j] == biases[part][h, j]
    assert qkv_w[0, 0] == 0 and qkv_w[EMBED, 0] == size and qkv_w[1, 0] == 1
    fc1_w = state['layers.1.ffn.layers.0.0.weight'].numpy()
    assert fc1_w.shape == (4 * EMBED, EMBED) and fc1_w[5, 3] == fc1[3, 5]
    conv = state['patch_embed.projection.weight'].numpy()
    assert conv.shape == (EMBED, 3, PATCH, PATCH)
    assert conv[7, 2, 3, 11] == patch[3, 11, 2, 7]
    # the other blocks are untouched
    assert torch.equal(state['layers.0.attn.qkv.weight'], converted['layers.0.attn.qkv.weight'])


def big_vision_names(arrays: dict) -> dict:
    renamed = {}
    for key, value in arrays.items():
        key = (
            key.replace('MultiHeadDotProductAttention_1', 'MultiHeadDotProductAttention_0')
            .replace('LayerNorm_2', 'LayerNorm_1')
            .replace('MlpBlock_3', 'MlpBlock_0')
        )
        if key == 'Transformer/posembed_input/pos_embedding':
            key = 'pos_embedding'
        renamed[key] = value
    return renamed


def scanned(arrays: dict) -> dict:
    out = {k: v for k, v in arrays.items() if not k.startswith('Transformer/encoderblock_')}
    suffixes = {k.split('/', 2)[2] for k in arrays if k.startswith('Transformer/encoderblock_0/')}
    for suffix in suffixes:
        out[f'Transformer/encoderblock/{suffix}'] = np.stack(
            [arrays[f'Transformer/encoderblock_{i}/{suffix}'] for i in range(DEPTH)]
        )
    return out


@pytest.mark.parametrize('variant', ['big_vision_numbering', 'scanned_blocks'])
def test_npz_variants(variant, converted):
    arrays = google_arrays(converted)
    arrays = big_vision_names(arrays) if variant == 'big_vision_numbering' else scanned(arrays)
    assert detect_format(arrays) == 'npz'
    assert_same_state(convert_vit(arrays), converted)


# --- (c) MAE ----------------------------------------------------------------------------
def test_mae_pretrain_checkpoint_drops_the_decoder(timm_state, converted):
    encoder = {k: v for k, v in timm_state.items() if not k.startswith('head.')}
    decoder = {
        'mask_token': torch.zeros(1, 1, 32),
        'decoder_embed.weight': torch.zeros(32, EMBED),
        'decoder_embed.bias': torch.zeros(32),
        'decoder_pos_embed': torch.zeros(1, 1 + GRID * GRID, 32),
        'decoder_blocks.0.norm1.weight': torch.ones(32),
        'decoder_blocks.0.attn.qkv.weight': torch.zeros(96, 32),
        'decoder_norm.weight': torch.ones(32),
        'decoder_pred.weight': torch.zeros(PATCH * PATCH * 3, 32),
    }
    checkpoint = {'model': {**encoder, **decoder}}
    assert detect_format(checkpoint) == 'mae'
    assert detect_format({**encoder, **decoder}) == 'mae'  # decoder keys alone suffice
    result = convert_vit_report(checkpoint)
    assert result.fmt == 'mae'
    assert sorted(result.ignored) == sorted(decoder)
    assert not any('decoder' in k or 'mask' in k for k in result.state_dict)
    assert_same_state(result.state_dict, converted)
    assert any('decoder' in note for note in result.notes)


def test_mae_finetuned_fc_norm_becomes_the_final_norm(timm_state, converted):
    state = {k: v for k, v in timm_state.items() if not k.startswith('norm.')}
    state['fc_norm.weight'] = timm_state['norm.weight'] * 2
    state['fc_norm.bias'] = timm_state['norm.bias'] - 1
    result = convert_vit_report({'model': state})
    assert result.fmt == 'mae'
    assert torch.equal(result.state_dict['ln1.weight'], state['fc_norm.weight'])
    assert torch.equal(result.state_dict['ln1.bias'], state['fc_norm.bias'])
    assert set(result.state_dict) == set(converted)
    assert any('fc_norm' in note for note in result.notes)

    to_ln2 = convert_vit({'model': state}, fc_norm_to='ln2')
    assert 'ln1.weight' not in to_ln2
    assert torch.equal(to_ln2['ln2.weight'], state['fc_norm.weight'])
    model = build_mm(final_norm=False, out_type='avg_featmap')
    check_state_dict(model.state_dict(), to_ln2)  # covers that model exactly


# --- (d) check_state_dict ---------------------------------------------------------------
def test_check_state_dict_names_every_problem(converted):
    expected = build_mm().state_dict()
    check_state_dict(expected, converted)  # an exact match passes

    loaded = {k: v for k, v in converted.items() if k != 'layers.1.ln2.bias'}
    loaded['pos_embed'] = torch.zeros(1, 17, EMBED)
    loaded['extra.weight'] = torch.zeros(3)
    with pytest.raises(ValueError) as info:
        check_state_dict(expected, loaded, prefix_hint='backbone.')
    message = str(info.value)
    assert 'backbone.layers.1.ln2.bias' in message
    assert 'backbone.pos_embed: model [1, 10, 64] vs checkpoint [1, 17, 64]' in message
    assert 'backbone.extra.weight' in message
    assert '1 missing, 1 mis-shaped, 1 unused' in message


def test_check_state_dict_spots_a_prefix_and_refuses_unused_weights(converted):
    expected = build_mm().state_dict()
    with pytest.raises(ValueError, match="remove the prefix 'backbone.'"):
        check_state_dict(expected, {f'backbone.{k}': v for k, v in converted.items()})
    with pytest.raises(ValueError, match=r'0 missing, 0 mis-shaped, 1 unused(.|\n)*head.weight'):
        check_state_dict(expected, {**converted, 'head.weight': torch.zeros(2)})


# --- (e) errors -------------------------------------------------------------------------
def test_unknown_layout_raises_with_examples():
    with pytest.raises(ValueError, match=r"unrecognised checkpoint layout.*'encoder\.w'"):
        detect_format({'encoder.w': torch.zeros(1), 'decoder.w': torch.zeros(1)})
    with pytest.raises(ValueError, match='unrecognised'):
        convert_vit({'state_dict': {'features.0.weight': torch.zeros(1)}})
    with pytest.raises(ValueError, match='unknown checkpoint format'):
        convert_vit({'cls_token': torch.zeros(1, 1, EMBED)}, fmt='jax')


def test_wrong_explicit_format_raises(converted):
    with pytest.raises(ValueError, match="keys look like 'npz'"):
        convert_vit(vit_to_npz(converted, num_heads=HEADS), fmt='timm')


def test_missing_file_raises_naming_the_path(tmp_path):
    missing = str(tmp_path / 'ViT-B_16.npz')
    with pytest.raises(FileNotFoundError, match='nothing is downloaded') as info:
        load_vit_weights(missing)
    assert missing in str(info.value)


# --- (f) command-line tool --------------------------------------------------------------
def load_tool():
    spec = importlib.util.spec_from_file_location(
        'convert_checkpoint', osp.join(REPO, 'tools', 'convert_checkpoint.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_a_loadable_checkpoint(
    tmp_path, capsys, timm_state, converted, images, timm_features
):
    tool = load_tool()
    sources = {
        'timm.pth': ('timm', lambda p: torch.save(timm_state, p)),
        'google.npz': ('npz', lambda p: np.savez(p, **google_arrays(converted))),
        'mae.pth': ('mae', lambda p: torch.save({'model': dict(timm_state)}, p)),
    }
    try:
        from safetensors.torch import save_file

        sources['timm.safetensors'] = (
            'timm',
            lambda p: save_file({k: v.contiguous() for k, v in timm_state.items()}, p),
        )
    except ImportError:
        pass
    for name, (fmt, write) in sources.items():
        src, dst = str(tmp_path / name), str(tmp_path / 'out' / f'{name}.pth')
        write(src)
        assert tool.main([src, dst]) == 0
        printed = capsys.readouterr().out
        assert f'format:  {fmt} (detected)' in printed
        assert f'tensors: {len(converted)} ' in printed
        checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
        assert list(checkpoint) == ['state_dict']
        assert_same_state(checkpoint['state_dict'], converted)
        if name == 'timm.pth':
            assert 'ignored: 2 keys: head.weight, head.bias' in printed
    torch.testing.assert_close(
        mm_features(checkpoint['state_dict'], images), timm_features, atol=ATOL, rtol=0
    )

    src, dst = str(tmp_path / 'timm.pth'), str(tmp_path / 'explicit.pth')
    assert tool.main([src, dst, '--format', 'timm']) == 0
    printed = capsys.readouterr().out
    assert 'format:  timm (given)' in printed and 'head.weight' in printed
    assert tool.main([str(tmp_path / 'absent.pth'), dst]) == 1
    assert 'absent.pth' in capsys.readouterr().err


# --- (g) position embeddings ------------------------------------------------------------
def test_resize_pos_embed_keeps_the_class_token(converted):
    pos = converted['pos_embed']
    assert torch.equal(resize_pos_embed(pos, (GRID, GRID)), pos)  # identity

    resized = resize_pos_embed(pos, (5, 4))
    assert resized.shape == (1, 1 + 5 * 4, EMBED)
    assert torch.equal(resized[:, :1], pos[:, :1])
    # the same resampling mmpretrain applies at run time
    torch.testing.assert_close(resized, mm_resize_pos_embed(pos, (GRID, GRID), (5, 4)))
    # bicubic over the grid keeps a constant field constant
    constant = torch.cat([pos[:, :1], torch.full((1, GRID * GRID, EMBED), 0.25)], dim=1)
    torch.testing.assert_close(
        resize_pos_embed(constant, (6, 6))[:, 1:], torch.full((1, 36, EMBED), 0.25)
    )
    with pytest.raises(ValueError, match='not a square grid'):
        resize_pos_embed(torch.zeros(1, 1 + 6, EMBED), (3, 3))


def test_adapt_pos_embed_loads_into_a_larger_grid(converted):
    model = build_mm(img_size=64)  # 4x4 grid
    expected = model.state_dict()
    with pytest.raises(ValueError, match='pos_embed'):
        check_state_dict(expected, converted)
    adapted = adapt_pos_embed(converted, expected)
    assert adapted['pos_embed'].shape == (1, 17, EMBED)
    assert torch.equal(adapted['pos_embed'][:, :1], converted['pos_embed'][:, :1])
    assert converted['pos_embed'].shape == (1, 10, EMBED)  # the input is left alone
    check_state_dict(expected, adapted)
    model.load_state_dict(adapted, strict=True)
    assert (
        adapt_pos_embed(converted, build_mm().state_dict())['pos_embed'] is converted['pos_embed']
    )
