"""The dense backbone: frozen ViT + WST branch + HST side network -> 4-level pyramid."""

import copy
import os.path as osp
import re
import zlib
from functools import partial

import pytest
import torch

from mmwst.models import DenseTunedViT
from mmwst.models.backbones import DenseTunedEVA02, TunedVisionTransformer, dense_backbone_for
from mmwst.models.param_report import parameter_report
from mmwst.models.tuners.base import BaseTuner
from tests.models.tuners.table import DENSE_SIZES, VIT_HOSTS, build_dense
from tests.models.tuners.table_hst import hst_parts, record_side_keys

ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)
SIDE = dict(channels=(16, 32, 48, 64), num_heads=(1, 2, 2, 4))
VARIANTS = {
    'wst+hst': dict(wst=dict(rank=2), hst=SIDE),
    'hst': dict(wst=None, hst=SIDE),
    'wst': dict(wst=dict(rank=2), hst=None),
    'mixed': dict(wst=dict(rank=2), hst=SIDE, pyramid='mixed'),
    'vit': dict(wst=dict(rank=2), hst=SIDE, pyramid='vit'),
}


REFERENCE = osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))), 'data', 'dense_reference.pt')


def _build(variant, seed=0, patch_size=16, **kwargs):
    torch.manual_seed(seed)
    model = DenseTunedViT(
        arch=ARCH, img_size=64, patch_size=patch_size, **VARIANTS[variant], **kwargs
    )
    model.init_weights()
    return model


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize(
    'patch_size, size',
    [(16, (64, 64)), (16, (64, 96)), (16, (96, 32)), (8, (64, 40)), (14, (56, 84))],
)
def test_four_maps_at_strides_4_to_32(variant, patch_size, size):
    """Whatever the patch size; sides not divisible by a stride round up (ceil)."""
    model = _build(variant, patch_size=patch_size).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert len(outs) == 4
    assert model.out_strides == (4, 8, 16, 32)
    for out, stride, channels in zip(outs, model.out_strides, model.out_channels):
        expected = (2, channels, -(-size[0] // stride), -(-size[1] // stride))
        assert out.shape == expected, (stride, out.shape)


def test_wst_pyramid_at_patch_16_needs_no_resampling():
    """At p = 16 the four maps are the branch state, its 2x transposed convolution, the
    ViT map and its 2x max-pooling, untouched."""
    model = _build('wst').eval()
    pyramid = model.pyramid
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
        expected_up = pyramid.up(outs[1])
        expected_coarse = torch.nn.functional.max_pool2d(outs[2], 2, 2, ceil_mode=True)
    torch.testing.assert_close(outs[0], expected_up, rtol=0, atol=0)
    torch.testing.assert_close(outs[3], expected_coarse, rtol=0, atol=0)


@pytest.mark.parametrize('host_grad', [True, False])
@pytest.mark.parametrize('variant', VARIANTS)
def test_only_the_tuned_parts_learn_and_the_vit_stays_frozen(variant, host_grad):
    model = _build(variant, host_grad=host_grad).train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    # HST trains the ViT's LayerNorms, through the ViT only
    norms = {
        id(p) for spec in model.blocks for n in (spec.norm1, spec.norm2) for p in n.parameters()
    }
    trained = norms if (host_grad and model.side is not None) else set()
    for name, param in model.host_named_parameters():
        assert param.requires_grad == (id(param) in trained), name
        assert (param.grad is not None) == param.requires_grad, name
    for part in (model.wst, model.side, model.pyramid):
        for name, param in part.named_parameters() if part is not None else ():
            assert param.grad is not None, name
    if model.side is not None:
        assert (model.side.meta_tokens is not None) == host_grad


def test_the_side_network_reads_the_wst_branch():
    model = _build('wst+hst').eval()
    assert model.side.branch_bridges is not None
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.wst.branch.patch_embed.weight.mul_(2.0)  # changes S_0 and every S_l
        after = model(x)
    assert not torch.allclose(before[0], after[0])  # stage 1 sees the branch
    assert _build('hst').side.branch_bridges is None


def _coarse_maps_equal_the_side_pyramids(model, side, x):
    """``model``'s maps for ``x``, after checking that its two coarse ones equal the side
    pyramid's of the same weights (``side``: a side-pyramid model, its weights replaced
    by ``model``'s but the pyramid's)."""
    with model.full_state_dict():
        state = {k: v for k, v in model.state_dict().items() if not k.startswith('pyramid.')}
    with side.full_state_dict():
        side.load_state_dict(state)
    with torch.no_grad():
        outs, reference = model(x), side(x)
    for level in (2, 3):
        torch.testing.assert_close(outs[level], reference[level], rtol=0, atol=0)
    return outs


def test_the_mixed_pyramid_is_the_wst_branch_fine_and_the_side_network_coarse():
    """pyramid='mixed': the maps at strides 16 and 32 are the side network's last two
    stages, exactly as the side pyramid of the same weights gives them; those at 4 and 8
    are WST's branch state S_L and its 2x transposed convolution (at p = 16 untouched by
    any resampling); the widths follow."""
    mixed = _build('mixed').eval()
    x = torch.randn(2, 3, 64, 96)
    outs = _coarse_maps_equal_the_side_pyramids(mixed, _build('wst+hst', seed=5).eval(), x)
    with torch.no_grad():
        expected_up = mixed.pyramid.up(outs[1])
    torch.testing.assert_close(outs[0], expected_up, rtol=0, atol=0)
    assert outs[1].shape[1] == ARCH['embed_dims'] // 4
    assert mixed.out_channels == (16, 16, 48, 64) and mixed.out_strides == (4, 8, 16, 32)


@pytest.mark.parametrize('host_grad', [True, False], ids=['through', 'beside'])
def test_the_vit_pyramid_is_the_last_map_fine_and_the_side_network_coarse(host_grad):
    """pyramid='vit': the maps at strides 16 and 32 are the side network's last two
    stages, exactly as the side pyramid of the same weights gives them; the one at 8 is
    the last block's patch map, as the tuners leave it, through the LayerNorm, and the
    one at 4 its 2x transposed convolution (at p = 8 untouched by any resampling)."""
    build = partial(_build, patch_size=8, host_grad=host_grad)
    model = build('vit').eval()
    x = torch.randn(2, 3, 64, 96)
    outs = _coarse_maps_equal_the_side_pyramids(model, build('wst+hst', seed=5).eval(), x)
    # the tokens the walk leaves after the last block (every tuner's hooks run; patch
    # tokens last), recorded on a second pass
    recorded = []
    walk_step = model._between_blocks

    def record(spec, tokens, ctx, maps):
        if spec.index == len(model.layers) - 1:
            recorded.append((tokens, ctx.patch_resolution))
        return walk_step(spec, tokens, ctx, maps)

    model._between_blocks = record
    with torch.no_grad():
        again = model(x)
    tokens, (h, w) = recorded[0]
    grid = tokens[:, -h * w :].unflatten(1, (h, w)).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = model.pyramid.norm(grid)
        expected_up = model.pyramid.up(expected)
    torch.testing.assert_close(again[1], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(outs[1], expected, rtol=0, atol=0)
    torch.testing.assert_close(outs[0], expected_up, rtol=0, atol=0)
    assert model.out_channels == (32, 64, 48, 64) and model.out_strides == (4, 8, 16, 32)


def _patch_rank(fine: torch.Tensor) -> int:
    """Affine rank of a stride-p/2 map's content per patch: its 2x2 cells of every patch
    as one vector, centred over all patches."""
    b, c, h, w = fine.shape
    cells = fine.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    vectors = cells.reshape(-1, c * 4).double()
    return int(torch.linalg.matrix_rank(vectors - vectors.mean(0), rtol=1e-5))  # fp32 maps


@pytest.mark.parametrize('rank', [2, 3])
def test_the_mixed_pyramids_fine_maps_come_from_r_numbers_per_patch(rank):
    """Why the ViT's last map detects better (docs/dense_modes.md): the mixed pyramid's
    fine maps are S_L = IDWT(W_{L-1}) and its transposed convolution (resampled), and S_L
    is WST's last rank-r bottleneck's output, so over each patch its cells span an
    r-dimensional affine subspace; pyramid='vit' reads the last patch map, whose content
    per patch is not so confined."""
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(0)
    mixed = DenseTunedViT(
        arch=ARCH, img_size=64, patch_size=8, wst=dict(rank=rank), hst=SIDE, pyramid='mixed'
    ).eval()
    states = []
    spatial = mixed.wst.branch.spatial
    mixed.wst.branch.spatial = lambda state: states.append(spatial(state)) or states[-1]
    with torch.no_grad():
        fine = mixed(x)[1]
    # the last call is S_L, which the pyramid reads (at p = 8 max-pooled to stride 8)
    pooled = torch.nn.functional.adaptive_max_pool2d(states[-1], fine.shape[-2:])
    torch.testing.assert_close(fine, pooled, rtol=0, atol=0)
    assert _patch_rank(states[-1]) == rank
    vit = _build('vit', patch_size=8).eval()
    with torch.no_grad():
        fine = vit(x)[1]  # the last patch map itself at p = 8: one cell per patch
    flat = fine.permute(0, 2, 3, 1).reshape(-1, fine.shape[1]).double()
    assert int(torch.linalg.matrix_rank(flat - flat.mean(0), rtol=1e-5)) > 32


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(pyramid='vit', hst=None), "pyramid='vit' needs HST"),
        (dict(pyramid='mixed', wst=None, hst=SIDE), "pyramid='mixed' needs WST and HST"),
        (dict(pyramid='mixed', hst=None), "pyramid='mixed' needs WST and HST"),
        (dict(pyramid='side', hst=None), "pyramid='side' needs HST"),
        (dict(pyramid='wst', hst=SIDE), 'HST would not train'),
        (dict(pyramid='fpn', hst=SIDE), 'pyramid must be one of'),
    ],
)
def test_a_pyramid_the_parts_cannot_make_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DenseTunedViT(arch=ARCH, img_size=64, patch_size=16, **kwargs)


def test_needs_at_least_one_part():
    with pytest.raises(ValueError, match='needs WST, HST or both'):
        DenseTunedViT(arch=ARCH, img_size=64, patch_size=16, wst=None, hst=None)


def test_adapter_only_checkpoint_round_trip(tmp_path):
    source = _build('wst+hst', seed=1)
    with source.full_state_dict():
        state = source.state_dict()
    # the frozen ViT only: neither tuners nor the dense parts (a pretrained file holding
    # those is refused: the host would not use them)
    host = {k: v for k, v in state.items() if not k.startswith(('tuners.', 'wst.', 'hst.'))}
    torch.save({'state_dict': host}, tmp_path / 'base.pth')
    model = _build('wst+hst', seed=2, pretrained=str(tmp_path / 'base.pth'))
    with torch.no_grad():
        for p in model.tuners.parameters():
            p.add_(0.01)
    state = model.state_dict()
    fresh = copy.deepcopy(_build('wst+hst', seed=3, pretrained=str(tmp_path / 'base.pth')))
    fresh.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64)
    model.eval(), fresh.eval()
    with torch.no_grad():
        for a, b in zip(model(x), fresh(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_vit_b16_count():
    model = DenseTunedViT(arch='b', img_size=224, patch_size=16)
    report = parameter_report(model)
    channels = [64, 128, 256, 384]
    side = sum(hst_parts(768, 12, channels).values())
    branch_bridges = sum(192 * c + c for c in channels)
    rows = {r.name: r.trainable for r in report.rows}
    assert rows['dense: WST branch'] == 83_160
    assert rows['dense: HST side network'] == side + branch_bridges == 10_564_672
    assert report.trainable_without_head == 83_160 + 10_564_672
    assert model.out_channels == (64, 128, 256, 384) and model.out_strides == (4, 8, 16, 32)
    # never through the ViT: no meta tokens (12 x 768) and no ViT LayerNorms (4 x 12 x 768)
    frozen_path = DenseTunedViT(arch='b', img_size=224, patch_size=16, host_grad=False)
    without = parameter_report(frozen_path).trainable_without_head
    assert without == 83_160 + 10_564_672 - 12 * 768 - 4 * 12 * 768
    # the mixed pyramid: the side network as it is, plus the WST pyramid's transposed
    # convolution (192 x 192 x 2 x 2 + 192), and its fine maps 192 wide
    mixed = DenseTunedViT(arch='b', img_size=224, patch_size=16, pyramid='mixed')
    rows = {r.name: r.trainable for r in parameter_report(mixed).rows}
    assert (
        rows['dense: WST pyramid, fine levels']
        == 147_648
        == mixed.dense_param_count() - (83_160 + 10_564_672)
    )
    assert mixed.out_channels == (192, 192, 256, 384)
    # the ViT's fine levels: a LayerNorm (2 x 768) and a transposed convolution to half
    # the width (768 x 384 x 2 x 2 + 384)
    vit = DenseTunedViT(arch='b', img_size=224, patch_size=16, pyramid='vit')
    rows = {r.name: r.trainable for r in parameter_report(vit).rows}
    assert (
        rows['dense: ViT fine levels']
        == 2 * 768 + 768 * 384 * 4 + 384
        == 1_181_568
        == vit.dense_param_count() - (83_160 + 10_564_672)
    )
    assert vit.out_channels == (384, 768, 256, 384)


# ---- the same outputs as the first, hook-based implementation -----------------------------
def _reference_name(key: str, variant: str) -> str:
    """The name a parameter had when WST, HST and the WST pyramid were first hook tuners
    (before they became the dense backbone's parts ``wst.branch`` and ``hst.side``)."""
    hst = 1 if variant.startswith('wst+') else 0
    for pattern, old in (
        (r'wst\.branch\.(.*)', 'tuners.0.{}'),
        (r'hst\.side\.net\.(.*)', f'tuners.{hst}.side.{{}}'),
        (r'hst\.side\.(.*)', f'tuners.{hst}.{{}}'),
        (r'pyramid\.(.*)', 'tuners.1.{}'),
    ):
        match = re.fullmatch(pattern, key)
        if match:
            return old.format(match.group(1))
    return key


def _fill_by_name(model, variant):
    """Every floating tensor drawn from a generator seeded by its (reference) name."""
    with torch.no_grad(), model.full_state_dict():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            name = _reference_name(key, variant)
            gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            value = torch.randn(tensor.shape, generator=gen) * 0.1
            if name.endswith('running_var'):
                value = 1 + value.abs()
            elif name.endswith('.weight') and tensor.dim() == 1:
                value = 1 + value
            tensor.copy_(value)


def test_the_dense_backbone_equals_the_first_hook_based_implementation():
    """tests/data/dense_reference.pt holds the outputs that WST + HST (+ WSTPyramid) as hook
    tuners on the ViT gave for weights filled by name (commit 0443b16): same weights,
    same outputs (to 1e-5, absolute or relative: the side network's cross-attention and
    the Haar transform now compute the same sums in another order, and the rounding of
    such sums differs between CPUs by up to about 1e-6), for every variant at patch
    sizes 8 and 16."""
    reference = torch.load(REFERENCE, weights_only=True)
    image = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    for name, case in reference['variants'].items():
        variant = name.split('@')[0]
        model = DenseTunedViT(
            arch=reference['arch'], img_size=64, patch_size=case['patch'], **case['kwargs']
        ).eval()
        _fill_by_name(model, variant)
        with torch.no_grad():
            outs = model(image)
        assert len(outs) == len(case['outputs']) == 4
        for out, expected in zip(outs, case['outputs']):
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


GRAD_REFERENCE = osp.join(osp.dirname(REFERENCE), 'dense_grad_reference.pt')


@pytest.mark.parametrize('case', ['wst+hst', 'mixed beside', 'wst+hst+lora', 'hst'])
def test_values_and_gradients_equal_the_earlier_fused_loop(case):
    """tests/data/dense_grad_reference.pt holds the maps and every parameter's gradient
    that the dense backbone gave while it ran its own fused loop over the blocks (commit
    de50429), for weights filled by name: through and beside the ViT, the side and
    mixed pyramids, with LoRA inside. The composition (the host's walk with WST and HST
    as parts) gives the same, to float rounding: the side network now bridges each
    layer's tokens in one product where the loop bridged keys and patches apart."""
    reference = torch.load(GRAD_REFERENCE, weights_only=True)
    expected = reference['cases'][case]
    model = DenseTunedViT(
        arch=reference['arch'], img_size=64, patch_size=8, **expected['kwargs']
    ).train()
    _fill_by_name(model, expected['variant'])
    image = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    maps = model(image)
    loss = 0
    for i, (out, want) in enumerate(zip(maps, expected['outputs'], strict=True)):
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(10 + i))
        loss = loss + (out * weight).sum()
    loss.backward()
    grads = {
        _reference_name(name, expected['variant']): p.grad
        for name, p in model.named_parameters()
        if p.grad is not None
    }
    assert grads.keys() == expected['grads'].keys()
    scale = max(g.abs().max() for g in expected['grads'].values())
    for name, want in expected['grads'].items():
        torch.testing.assert_close(grads[name], want, rtol=1e-4, atol=1e-6 * scale, msg=name)


# ---- the mode that never back-propagates through the ViT ---------------------------------
def _block_io(model):
    """Record every block's input and output."""
    record = []
    for layer in model.layers:
        layer.register_forward_hook(lambda m, args, out: record.append((args[0], out)))
    return record


@pytest.mark.parametrize('variant', VARIANTS)
def test_without_host_grad_the_vit_computes_its_frozen_features(variant):
    """No feedback, no meta token: the blocks see exactly what the bare ViT computes,
    and nothing of the ViT enters autograd."""
    model = _build(variant, host_grad=False).train()
    record = _block_io(model)
    x = torch.randn(2, 3, 64, 64)
    outs = model(x)
    assert all(o.requires_grad for o in outs)
    bare = _build(variant, host_grad=False).eval()  # same seed: same frozen weights
    with torch.no_grad():
        tokens, _ = bare._embed_tokens(x)
        for (seen_in, seen_out), layer in zip(record, bare.layers):
            assert not seen_in.requires_grad and not seen_out.requires_grad
            assert seen_out.grad_fn is None
            torch.testing.assert_close(seen_in, tokens, rtol=0, atol=0)
            tokens = layer(tokens)
            torch.testing.assert_close(seen_out, tokens, rtol=0, atol=0)


# ---- a composition: the host's one walk with WST and HST as its parts ----------------------
def test_wst_and_hst_are_the_parts_the_hosts_walk_drives():
    """No loop of its own: the dense backbone is the host's block walk with the WST and
    HST tuners (the classification tuners' classes) after the user's tuners."""
    from mmwst.models.backbones.host import TunableHostMixin
    from mmwst.models.tuners import HST, WST

    assert DenseTunedViT._walk_blocks is TunableHostMixin._walk_blocks
    for host_grad in (True, False):
        model = _build(
            'wst+hst',
            host_grad=host_grad,
            tuners=[] if not host_grad else [dict(type='mmwst.LoRA', rank=2)],
        )
        lora, *parts = model._walk_tuners
        assert type(lora).__name__ == 'LoRA' if host_grad else isinstance(lora, WST)
        wst, hst = parts if host_grad else [lora, *parts]
        assert isinstance(wst, WST) and isinstance(hst, HST)
        assert (wst.feedback, hst.key) == ((True, 'meta') if host_grad else (False, 'cls'))
        assert model.wst is wst and model.hst is hst and model.side is hst.side


class _StrayToken(BaseTuner):
    """Inserts one token before block 0 and never removes it (a broken tuner)."""

    def before_block(self, index, x, ctx):
        if index:
            return x
        ctx.num_prefix += 1
        return torch.cat([x[:, :1], x], dim=1)


def test_a_token_left_behind_is_named_on_the_dense_backbone_too():
    """The walk's check on inserted tokens holds here as on every host."""
    model = _build('wst+hst', tuners=[_StrayToken()]).eval()
    with pytest.raises(RuntimeError, match='left 1 inserted tokens'):
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))


def test_a_tuner_that_reads_the_grid_runs_inside_the_dense_backbone():
    """Mona finds the patch grid behind the meta token that HST inserts, because HST
    counts it in ctx.num_prefix as the walk requires; its adapters learn there."""
    model = _build('mixed', tuners=[dict(type='mmwst.Mona', bottleneck=4)]).train()
    outs = model(torch.randn(2, 3, 64, 96))
    sum(o.square().mean() for o in outs).backward()
    mona = model.tuners[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mona.parameters())


def test_checkpoints_with_the_earlier_part_names_load():
    """Checkpoints written when the branch was ``wst.*`` and the side network ``side.*``
    (before both became parts: ``wst.branch.*``, ``hst.side.*``) load and give the same
    maps."""
    source = _build('mixed', seed=1).eval()
    with source.full_state_dict():
        state = source.state_dict()
    old = {}
    for key, value in state.items():
        key = re.sub(r'^wst\.branch\.', 'wst.', key)
        old[re.sub(r'^hst\.side\.', 'side.', key)] = value
    assert any(k.startswith('side.') for k in old) and not any(k.startswith('hst.') for k in old)
    model = _build('mixed', seed=2).eval()
    model.load_state_dict(old)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(source(x), model(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_hst_beside_the_vit_needs_a_class_token():
    with pytest.raises(ValueError, match="key='cls' reads each layer's class-token output"):
        _build('wst+hst', host_grad=False, with_cls_token=False, out_type='featmap')


def test_without_host_grad_the_side_keys_are_the_class_token_outputs():
    """Beside the ViT the side network reads each block's whole output, its first token
    (the class token's output) as the key."""
    model = _build('wst+hst', host_grad=False).eval()
    record = _block_io(model)
    keys = record_side_keys(model.side)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert len(keys) == len(model.layers)
    for key, (_, out) in zip(keys, record):
        assert torch.equal(key, out[:, :1])


def _bytes_saved_inside_the_vit_blocks(model, x) -> int:
    """Bytes autograd keeps for backward while the ViT's blocks run."""
    inside, total = [False], [0]
    for layer in model.layers:
        layer.register_forward_pre_hook(lambda m, args: inside.__setitem__(0, True))
        layer.register_forward_hook(lambda m, args, out: inside.__setitem__(0, False))

    def pack(t):
        if inside[0]:
            total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return total[0]


@pytest.mark.parametrize('variant', VARIANTS)
def test_without_host_grad_the_vit_keeps_no_activation(variant):
    x = torch.randn(2, 3, 64, 64)
    through = _bytes_saved_inside_the_vit_blocks(_build(variant).train(), x)
    beside = _bytes_saved_inside_the_vit_blocks(_build(variant, host_grad=False).train(), x)
    assert through > 100_000 and beside == 0, (through, beside)


def test_without_host_grad_inner_tuners_are_refused():
    with pytest.raises(ValueError, match='host_grad=False never back-propagates'):
        DenseTunedViT(
            arch=ARCH, img_size=64, patch_size=16, host_grad=False, tuners=[dict(type='mmwst.LoRA')]
        )


def test_beside_the_vit_inference_launches_at_most_3x_the_frozen_forwards_operators():
    """The operator target the dense backbone meets (tools/benchmark.py --ops-only): its
    inference forward beside the ViT launches at most 3x the operators of the frozen
    ViT's, counted as the benchmark counts them (a pooled linear head on each) on a ViT
    with ViT-B's 12 layers and patch size (narrow, small input: the counts do not depend
    on widths or input size once the stages' grids relate as at 224)."""
    import sys

    from tests.helpers import TOOLS

    if TOOLS not in sys.path:
        sys.path.insert(0, TOOLS)
    from benchmarking.methods import ARCHS, build_classifier
    from benchmarking.ops import count_ops

    arch = dict(embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64)
    ARCHS['b12_narrow'] = dict(arch=arch, patch_size=16)
    infer = {}
    try:
        for method in ('frozen', 'dense_beside_vit'):
            model = build_classifier(method, 'b12_narrow', img_size=64).eval()
            image = torch.randn(1, 3, 64, 64)
            with torch.no_grad():
                infer[method] = count_ops(partial(model, image))[0]
    finally:
        del ARCHS['b12_narrow']
    assert infer['dense_beside_vit'] <= 3 * infer['frozen'], infer


# ---- on every ViT-like host of the shared table -------------------------------------------
DENSE_VARIANTS = {
    'wst+hst': dict(wst=dict(rank=2)),
    'mixed': dict(wst=dict(rank=2), pyramid='mixed'),
    'vit': dict(wst=dict(rank=2), pyramid='vit'),
    'wst': dict(wst=dict(rank=2), hst=None),
}


@pytest.mark.parametrize('host_grad', [True, False], ids=['through', 'beside'])
@pytest.mark.parametrize('variant', DENSE_VARIANTS)
@pytest.mark.parametrize('kind', VIT_HOSTS)
def test_four_maps_and_gradients_on_every_vit_like_host(kind, variant, host_grad):
    """The classic ViT, DINOv2 with registers, CLIP-style and EVA-02 hosts: four maps at
    the declared strides and widths, every trainable parameter reached by the gradient,
    the host's frozen weights by none, and the trained count equals
    ``dense_param_count()``."""
    torch.manual_seed(0)
    model = build_dense(kind, host_grad, **DENSE_VARIANTS[variant])
    model.init_weights()
    model.train()
    h, w = DENSE_SIZES[kind]
    outs = model(torch.randn(1, 3, h, w))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (c, h // s, w // s) for c, s in zip(model.out_channels, model.out_strides)
    ]
    assert model.out_strides == (4, 8, 16, 32)
    sum(o.float().pow(2).mean() for o in outs).backward()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    missed = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert trained and not missed, missed
    frozen = [n for n, p in model.host_named_parameters() if not p.requires_grad]
    assert frozen and all(dict(model.named_parameters())[n].grad is None for n in frozen)
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == (
        model.dense_param_count()
    )


def test_each_host_class_names_its_dense_backbone_or_the_reason_it_has_none():
    """SAM's encoder has no class token (the side network's key beside the ViT) and its
    windows have no place for HST's meta token (its key through the ViT); Swin's stages
    are a pyramid already."""
    assert dense_backbone_for('mmwst.TunedEVA02') is DenseTunedEVA02
    assert dense_backbone_for(TunedVisionTransformer) is DenseTunedViT
    with pytest.raises(ValueError, match='no class token'):
        dense_backbone_for('mmwst.TunedSAMViT')
    with pytest.raises(ValueError, match='pyramid at strides 4 to 32 already'):
        dense_backbone_for('TunedSwinTransformer')
