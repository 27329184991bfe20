"""HST's own math: meta tokens, the bridge, the side network, counts, outputs, the head."""

from __future__ import annotations

import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmwst.models.heads  # noqa: F401  (registers mmwst.HSTClsHead)
import mmwst.models.tuners.hst  # noqa: F401  (registers mmwst.HST)
from mmwst.models.backbones import TunedVisionTransformer
from mmwst.models.heads import HSTClsHead
from mmwst.models.layers.side_network import HierarchicalSideNetwork, MetaCrossAttention
from mmwst.models.param_report import parameter_report
from mmwst.models.tuners.base import BaseTuner, UnsupportedHostError
from mmwst.models.tuners.hst import HST
from tests.helpers import REPO
from tests.models.tuners.table import VIT_ARCH, build_host, perturb_tuners
from tests.models.tuners.table_hst import CHANNELS, HEADS, hst_parts, record_side_keys

CONFIG = osp.join(REPO, 'configs', 'hst', 'vit-b16_vtab-1k.py')
PATCH = 8  # the tiny host's patch size


def _tiny(output: str = 'cls', extra_tuners=(), seed: int = 0, **kwargs) -> TunedVisionTransformer:
    torch.manual_seed(seed)
    hst = dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS, output=output, **kwargs)
    model = build_host('vit', [hst, *extra_tuners])
    perturb_tuners(model, seed=seed)
    return model.eval()


def _image(height: int, width: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(7))


# ---- ViT-B/16: the published count, part by part ----------------------------------------
@pytest.fixture(scope='module')
def vit_b16():
    init_default_scope('mmpretrain')
    return MODELS.build(Config.fromfile(CONFIG).model)


def test_vit_b16_count_is_764_840_part_by_part(vit_b16):
    tuner = vit_b16.backbone.tuners[0]

    def count(params):
        return sum(p.numel() for p in params)

    parts = {
        'stem': count(tuner.side.net.stem.parameters()),
        'embeds': count(tuner.side.net.embeds.parameters()),
        'side_blocks': count(tuner.side.net.blocks.parameters()),
        'stage_norms': count(tuner.side.net.norms.parameters()),
        'bridges': count(tuner.side.bridges.parameters()),
        'bridge_norms': count(tuner.side.bridge_norms.parameters()),
        'meta_tokens': count(tuner.side.meta_tokens.parameters()),
        'vit_norms': count(tuner.host_parameters(vit_b16.backbone)),
    }
    assert parts == {
        'stem': 5_120,
        'embeds': 83_496,
        'side_blocks': 462_312,
        'stage_norms': 432,
        'bridges': 166_104,
        'bridge_norms': 1_296,
        'meta_tokens': 9_216,
        'vit_norms': 36_864,
    }
    assert parts == hst_parts(768, 12, [32, 48, 64, 72])
    report = parameter_report(vit_b16)
    assert report.trainable_without_head == 764_840
    assert report.trainable == 764_840 + 72 * 100 + 100  # HSTClsHead, 100 classes
    assert count(tuner.parameters()) == 764_840 - 36_864  # the rest are the host's LNs
    host_norms = {id(p) for p in tuner.host_parameters(vit_b16.backbone)}
    assert all(p.requires_grad == (id(p) in host_norms) for p in vit_b16.backbone.ln1.parameters())
    assert not any(p.requires_grad for p in vit_b16.backbone.ln1.parameters())  # final norm


def test_vit_b16_initialisation(vit_b16):
    tuner = vit_b16.backbone.tuners[0]
    bound = math.sqrt(6.0 / (2 * 768))  # xavier-uniform of a (1, 1, D) token
    assert all(t.abs().max() <= bound for t in tuner.side.meta_tokens)
    stem = tuner.side.net.stem.conv1.weight  # (32, 3, 3, 3): std sqrt(2 / (3 * 3 * 32))
    assert stem.std().item() == pytest.approx(math.sqrt(2 / (9 * 32)), rel=0.12)
    assert tuner.side.bridges[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(b.bias.abs().max() == 0 for b in tuner.side.bridges)
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in tuner.side.bridge_norms)
    first = tuner.side.net.blocks[0][0]
    assert first.attn.q.bias.abs().max() == 0 and first.mlp[0].bias.abs().max() == 0


# ---- the meta token: one per block, in front, removed afterwards --------------------------
class _Spy(BaseTuner):
    """Records what a tuner listed after HST sees around every block."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def before_block(self, index, x, ctx):
        self.seen.append(('before', index, x.shape[1], ctx.num_prefix))
        return x

    def after_block(self, index, x, ctx):
        self.seen.append(('after', index, x.shape[1], ctx.num_prefix))
        return x


def test_blocks_see_the_meta_token_and_the_sequence_continues_unchanged():
    spy = _Spy()
    model = _tiny(extra_tuners=[spy])
    tuner = model.tuners[0]
    inputs, outputs = {}, {}
    handles = []
    for i, layer in enumerate(model.layers):
        handles.append(layer.register_forward_pre_hook(lambda m, a, i=i: inputs.update({i: a[0]})))
        handles.append(layer.register_forward_hook(lambda m, a, o, i=i: outputs.update({i: o})))
    image = _image(32, 48)
    tokens = 1 + (32 // PATCH) * (48 // PATCH)  # cls + patches
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    for i in range(len(model.layers)):
        assert inputs[i].shape[1] == tokens + 1  # [M_i; cls; patches]
        assert torch.equal(inputs[i][:, 0], tuner.side.meta_tokens[i][0].expand(2, -1))
        if i:  # [cls; patches] of block i-1's output go on; the old meta token does not
            assert torch.equal(inputs[i][:, 1:], outputs[i - 1][:, 1:])
    assert [s for s in spy.seen if s[0] == 'before'] == [
        ('before', i, tokens + 1, 2) for i in range(4)
    ]
    assert [s for s in spy.seen if s[0] == 'after'] == [('after', i, tokens, 1) for i in range(4)]


# ---- the whole method against a literal, store-everything implementation ---------------
def _literal_hst(
    model: TunedVisionTransformer, image: torch.Tensor, num_meta: int = 1, block_indices=None
) -> torch.Tensor:
    """The method written out directly: all layers first, then the side network; ``M``
    meta tokens per layer, stage ``s`` reading layers ``b_{s-1} + 1 ... b_s``."""
    tuner = model.tuners[0]
    captured = {}
    hook = model.layers[0].register_forward_pre_hook(
        lambda m, a: captured.update(x=a[0][:, num_meta:])  # [cls; patches] after pos-embed
    )
    model(image)
    hook.remove()
    x = captured['x']
    B, h, w = image.shape[0], image.shape[2] // PATCH, image.shape[3] // PATCH
    L = len(model.layers)
    ends = list(block_indices or [L * (s + 1) // 4 - 1 for s in range(4)])
    metas, maps = [], []
    for i, layer in enumerate(model.layers):
        out = layer(torch.cat([tuner.side.meta_tokens[i].expand(B, -1, -1), x], dim=1))
        metas.append(out[:, :num_meta])  # the M meta tokens' outputs
        maps.append(out[:, num_meta + 1 :].transpose(1, 2).reshape(B, -1, h, w))  # F_l
        x = out[:, num_meta:]
    side = tuner.side.net
    feature, first = image, 0
    for s in range(4):
        tokens, hw = side.stem(image) if s == 0 else side.embeds[s - 1](feature)
        bridge = tuner.side.bridges[s]
        for j, layer in enumerate(range(first, ends[s] + 1)):
            g = tuner.side.bridge_norms[layer](bridge(metas[layer]))  # (B, M, C_s)
            resized = F.interpolate(maps[layer], size=hw, mode='bilinear', align_corners=False)
            fine = bridge(resized.flatten(2).transpose(1, 2))
            kv = torch.cat([g, fine.mean(dim=1, keepdim=True)], dim=1)  # M + 1 keys
            block = side.blocks[s][j]
            tokens = tokens + block.attn(block.norm1(tokens), kv)
            tokens = tokens + fine
            tokens = tokens + block.mlp(block.norm2(tokens))
        first = ends[s] + 1
        tokens = side.norms[s](tokens)
        feature = tokens.transpose(1, 2).reshape(B, -1, *hw)
    return feature.mean(dim=(2, 3))


@pytest.mark.parametrize('size', [(32, 48), (40, 56)], ids=['32x48', '40x56'])
def test_matches_a_literal_implementation(size):
    model = _tiny()
    image = _image(*size)
    with torch.no_grad():
        torch.testing.assert_close(model(image)[0], _literal_hst(model, image))


@pytest.mark.parametrize(
    ('num_meta', 'block_indices', 'depths'),
    [(3, None, (2, 2, 2, 2)), (1, (0, 3, 4, 7), (1, 3, 1, 3)), (2, (2, 3, 5, 7), (3, 1, 2, 2))],
)
def test_released_options_match_the_literal_implementation(num_meta, block_indices, depths):
    """Several meta tokens per layer (the release's metaG_num) and a custom layer-to-stage
    mapping (its block_indices) on an 8-layer host: the same output as the method written
    out, and the count part by part."""
    torch.manual_seed(0)
    hst = dict(
        type='mmwst.HST',
        channels=CHANNELS,
        num_heads=HEADS,
        num_meta_tokens=num_meta,
        block_indices=block_indices,
    )
    arch = dict(VIT_ARCH, num_layers=8)
    model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=PATCH, tuners=[hst])
    perturb_tuners(model, seed=0)
    model.eval()
    tuner = model.tuners[0]
    assert tuner.side.depths == depths
    assert [len(stage) for stage in tuner.side.net.blocks] == list(depths)
    assert tuple(tuner.side.meta_tokens[0].shape) == (1, num_meta, VIT_ARCH['embed_dims'])
    image = _image(32, 48)
    with torch.no_grad():
        torch.testing.assert_close(
            model(image)[0], _literal_hst(model, image, num_meta, block_indices)
        )
    parts = hst_parts(VIT_ARCH['embed_dims'], 8, CHANNELS, depths=depths, num_meta=num_meta)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trained == sum(parts.values()) == tuner.param_count(model)


@pytest.mark.parametrize(
    ('kwargs', 'expected'),
    [(dict(num_meta_tokens=2), 774_056), (dict(block_indices=(1, 5, 9, 11)), 767_264)],
)
def test_vit_b16_counts_with_the_released_options(kwargs, expected):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.tuners[0].update(kwargs)
    model = MODELS.build(cfg.model)
    depths = (2, 4, 4, 2) if 'block_indices' in kwargs else None
    parts = hst_parts(
        768, 12, [32, 48, 64, 72], depths=depths, num_meta=kwargs.get('num_meta_tokens', 1)
    )
    assert parameter_report(model).trainable_without_head == sum(parts.values()) == expected


def test_fine_map_projects_then_resizes_exactly():
    from mmwst.models.layers.resize import resize_tokens

    bridge = torch.nn.Linear(6, 5).double()
    patches = torch.randn(2, 4 * 6, 6, dtype=torch.float64)
    literal_map = patches.transpose(1, 2).reshape(2, 6, 4, 6)
    for size in [(8, 12), (4, 6), (2, 3), (1, 2), (3, 5)]:
        literal = bridge(
            F.interpolate(literal_map, size=size, mode='bilinear', align_corners=False)
            .flatten(2)
            .transpose(1, 2)
        )
        projected = bridge(patches).reshape(2, 4, 6, 5)  # channels-last (B, h, w, C)
        torch.testing.assert_close(resize_tokens(projected, size), literal)


# ---- cross-attention over the two key tokens ----------------------------------------------
def test_cross_attention_over_two_keys_by_hand():
    torch.manual_seed(0)
    attn = MetaCrossAttention(dim=8, num_heads=2).double()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    kv = torch.randn(3, 2, 8, dtype=torch.float64)
    q, k, v = attn.q(x), attn.k(kv), attn.v(kv)
    heads = []
    for head in range(2):
        cols = slice(4 * head, 4 * head + 4)
        s0 = (q[..., cols] * k[:, None, 0, cols]).sum(-1) / math.sqrt(4)  # (3, 5)
        s1 = (q[..., cols] * k[:, None, 1, cols]).sum(-1) / math.sqrt(4)
        a0 = torch.exp(s0) / (torch.exp(s0) + torch.exp(s1))  # softmax over the 2 keys
        heads.append(
            a0[..., None] * v[:, None, 0, cols] + (1 - a0)[..., None] * v[:, None, 1, cols]
        )
    expected = attn.proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attn(x, kv), expected)


def test_side_drop_path_rises_linearly_over_all_side_blocks():
    net = HierarchicalSideNetwork([4] * 4, [1] * 4, [3] * 4, drop_path_rate=0.3)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0) for stage in net.blocks for b in stage]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 12).tolist())


# ---- outputs: pooled stage 4, or the pyramid at strides 4 / 8 / 16 / 32 -------------------
@pytest.mark.parametrize('size', [(64, 96), (32, 48), (40, 56)], ids=['64x96', '32x48', '40x56'])
def test_pyramid_strides_and_non_square_inputs(size):
    model = _tiny('pyramid')
    assert model.tuners[0].out_strides == (4, 8, 16, 32)
    with torch.no_grad():
        maps = model(_image(*size))
    h, w = size
    h, w = math.ceil(h / 2) // 2, math.ceil(w / 2) // 2  # stem: 3x3/s2/p1 then 2x2/s2
    expected = []
    for channels in CHANNELS:
        expected.append((2, channels, h, w))
        h, w = math.ceil(h / 2), math.ceil(w / 2)  # 3x3/s2/p1
    assert [tuple(m.shape) for m in maps] == expected
    if size == (64, 96):  # divisible by 32: exact strides
        assert [size[0] // m.shape[2] for m in maps] == [4, 8, 16, 32]
        assert [size[1] // m.shape[3] for m in maps] == [4, 8, 16, 32]

    cls_model = _tiny('cls')
    with model.full_state_dict():
        cls_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        pooled = cls_model(_image(*size))
    assert len(pooled) == 1 and pooled[0].shape == (2, CHANNELS[-1])
    torch.testing.assert_close(pooled[0], maps[-1].mean(dim=(2, 3)))


# ---- user errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (dict(channels=[8, 8, 8]), ValueError, '4 stages'),
        (dict(num_heads=[3, 2, 2, 4]), ValueError, 'multiple of its heads'),
        (dict(channels=[8.0, 12, 16, 32]), TypeError, 'integers'),
        (dict(output='tokens'), ValueError, 'output must be one of'),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    args = dict(channels=CHANNELS, num_heads=HEADS)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        HST(**args)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        (dict(num_meta_tokens=0), 'num_meta must be a positive integer'),
        (dict(block_indices=(0, 1, 2)), 'last layer .* of each of the 4 stages'),
        (dict(block_indices=(0, 2, 1, 3)), 'strictly increasing'),
        (dict(block_indices=(0, 1, 2, 2)), 'strictly increasing'),
        (dict(block_indices=(0, 1, 2, 5)), r'ending at the last layer \(3\)'),
    ],
)
def test_bad_released_options_are_refused_when_built(kwargs, match):
    hst = dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS, **kwargs)
    with pytest.raises(ValueError, match=match):
        build_host('vit', [hst])


def test_block_indices_map_a_vit_whose_depth_is_not_a_multiple_of_four():
    arch = dict(VIT_ARCH, num_layers=6)
    hst = dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS, block_indices=(0, 2, 3, 5))
    model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=PATCH, tuners=[hst])
    assert model.tuners[0].side.depths == (1, 2, 1, 2)
    assert model(_image(32, 32))[0].shape == (2, CHANNELS[-1])


def test_needs_a_vit_with_a_multiple_of_four_layers():
    hst = dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS)
    with pytest.raises(UnsupportedHostError, match="HST runs on vit hosts.*'swin' host"):
        build_host('swin', [hst])
    arch = dict(VIT_ARCH, num_layers=6)
    with pytest.raises(ValueError, match='divisible by 4; the host has 6'):
        TunedVisionTransformer(arch=arch, img_size=32, patch_size=PATCH, tuners=[hst])


# ---- the classification head ------------------------------------------------------------
def test_head_normalises_without_affine_then_classifies():
    head = HSTClsHead(num_classes=5, in_channels=CHANNELS[-1])
    assert not head.norm.affine and head.norm.eps == 1e-6
    assert sum(p.numel() for p in head.parameters()) == CHANNELS[-1] * 5 + 5
    assert head.fc.bias.abs().max() == 0
    feats = torch.randn(6, CHANNELS[-1])
    head.train()(((feats),))  # update the running statistics once
    head.eval()
    mean, var = head.norm.running_mean, head.norm.running_var
    expected = head.fc((feats - mean) / torch.sqrt(var + 1e-6))
    torch.testing.assert_close(head((feats,)), expected)
    fmap = feats[:, :, None, None].expand(-1, -1, 2, 3)  # a (B, C, H, W) map is pooled
    torch.testing.assert_close(head((fmap,)), expected)
    with pytest.raises(ValueError, match=r'\(B, 32\)'):
        head((torch.randn(2, 16),))
    with pytest.raises(ValueError, match='num_classes must be >= 1'):
        HSTClsHead(num_classes=0, in_channels=8)


def test_config_states_the_recipe():
    cfg = Config.fromfile(CONFIG)
    tuner = cfg.model.backbone.tuners[0]
    assert cfg.model.head.type == 'mmwst.HSTClsHead' and cfg.model.neck is None
    assert cfg.model.head.in_channels == tuner.channels[-1] == 72
    assert 'i21k' in cfg.model.backbone.pretrained and 'aug_' in cfg.model.backbone.pretrained
    assert cfg.train_dataloader.batch_size == 64 == cfg.auto_scale_lr.base_batch_size
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.paramwise_cfg.flat_decay_mult == 0.0
    # the released curve: a 100-epoch cosine cycle with the 10 warm-up epochs inside it,
    # then 10 epochs at the floor, per epoch (tests/engine/test_schedulers.py checks it)
    (schedule,) = cfg.param_scheduler
    assert schedule.type == 'mmwst.WarmupCosineLR' and schedule.by_epoch
    assert (schedule.cycle, schedule.warmup, schedule.end) == (100, 10, 110)
    assert (schedule.warmup_start, schedule.eta_min) == (1e-7, 1e-8)
    assert cfg.train_cfg.max_epochs == 110


def test_key_cls_reads_the_class_token_and_leaves_the_vit_as_it_is():
    """key='cls': nothing is inserted into the ViT (its blocks see the frozen model's
    tokens), each side block's key is the layer's class-token output, only the side
    network trains (no meta tokens, no ViT norms) and the count formula says so."""
    hst = dict(type='mmwst.HST', channels=CHANNELS, num_heads=HEADS, key='cls')
    torch.manual_seed(0)
    model = TunedVisionTransformer(arch=VIT_ARCH, img_size=32, patch_size=8, tuners=[hst])
    model.init_weights()
    tuner = model.tuners[0]
    seen = []
    handles = [
        layer.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
        for layer in model.layers
    ]
    keys = record_side_keys(tuner.side)
    x = torch.randn(2, 3, 32, 48)
    out = model(x)[0]
    for handle in handles:
        handle.remove()
    frozen = TunedVisionTransformer(arch=VIT_ARCH, img_size=32, patch_size=8)
    with model.full_state_dict():
        host = {k: v for k, v in model.state_dict().items() if not k.startswith('tuners.')}
    frozen.load_state_dict(host, strict=False)
    outputs = []
    for layer in frozen.layers:
        layer.register_forward_hook(lambda m, i, o: outputs.append(o))
    with torch.no_grad():
        frozen(x)
    for (_, tuned), plain in zip(seen, outputs, strict=True):  # no token inserted
        torch.testing.assert_close(tuned, plain, rtol=0, atol=0)
    assert len(keys) == len(model.layers)
    for key, (_, block_out) in zip(keys, seen):
        assert torch.equal(key, block_out[:, :1])
    out.square().mean().backward()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith('tuners.0.side.') for n in trained), trained
    assert tuner.side.meta_tokens is None
    assert tuner.param_count(model) == sum(p.numel() for p in tuner.parameters())
