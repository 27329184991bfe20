"""The tuned hosts: pretrained loading, freezing, input sizes, clear errors."""

import copy

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT

from mmwst.models import TunedSwinTransformer, TunedVisionTransformer
from mmwst.models.backbones.convert import convert_vit
from mmwst.models.tuners import BaseTuner
from tests.models.tuners.table import HOSTS as TABLE_HOSTS
from tests.models.tuners.table import SIZES, blocks, build_host
from tests.npz_writer import vit_to_npz

ARCH = dict(embed_dims=48, num_layers=2, num_heads=3, feedforward_channels=96)


def _timm() -> TimmViT:
    torch.manual_seed(0)
    model = TimmViT(
        img_size=32,
        patch_size=8,
        embed_dim=48,
        depth=2,
        num_heads=3,
        mlp_ratio=2,
        qkv_bias=True,
        num_classes=0,
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def _host(pretrained=None, **kwargs):
    return TunedVisionTransformer(
        arch=ARCH, img_size=32, patch_size=8, pretrained=pretrained, out_type='raw', **kwargs
    ).eval()


@pytest.mark.parametrize('fmt', ['timm', 'npz'])
def test_pretrained_file_gives_timm_features(tmp_path, fmt):
    timm = _timm()
    if fmt == 'timm':
        path = tmp_path / 'timm.pth'
        torch.save(timm.state_dict(), path)
    else:
        path = tmp_path / 'google.npz'
        np.savez(path, **vit_to_npz(convert_vit(timm.state_dict()), num_heads=3))
    host = _host(str(path), tuners=[dict(type='mmwst.LoRA', rank=2)])
    host.init_weights()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(host(x)[0], timm.forward_features(x), rtol=1e-5, atol=1e-5)


def test_pretrained_with_wrong_shapes_fails_naming_keys(tmp_path):
    state = convert_vit(_timm().state_dict())
    state['layers.0.attn.qkv.weight'] = state['layers.0.attn.qkv.weight'][:, :10]
    del state['layers.1.ln2.bias']
    path = tmp_path / 'broken.pth'
    torch.save({'state_dict': state}, path)
    host = _host(str(path))
    with pytest.raises(ValueError) as err:
        host.init_weights()
    assert 'layers.0.attn.qkv.weight' in str(err.value)
    assert 'layers.1.ln2.bias' in str(err.value)


def test_missing_pretrained_file_is_named(tmp_path):
    host = _host(str(tmp_path / 'nowhere.npz'))
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        host.init_weights()


def test_pos_embed_resized_for_another_training_size(tmp_path):
    timm = _timm()
    path = tmp_path / 'timm.pth'
    torch.save(timm.state_dict(), path)
    host = TunedVisionTransformer(arch=ARCH, img_size=48, patch_size=8, pretrained=str(path))
    host.init_weights()  # 4x4 grid in the file, 6x6 in the model
    assert host.pos_embed.shape == (1, 1 + 36, 48)


def test_frozen_host_and_any_input_size():
    host = _host(tuners=[dict(type='mmwst.BitFit')])
    host.train()
    assert all(p.requires_grad == n.endswith('.bias') for n, p in host.named_parameters())
    assert host.eval() is host and host.train() is host  # mmpretrain's return None
    for size in [(32, 32), (24, 40), (64, 16)]:
        out = host(torch.randn(1, 3, *size))[0]
        assert out.shape == (1, 1 + size[0] // 8 * size[1] // 8, 48)
    with pytest.raises(ValueError, match='not divisible by the patch size'):
        host(torch.randn(1, 3, 30, 32))


def test_frozen_stages_and_bad_tuners_are_rejected():
    with pytest.raises(ValueError, match='frozen_stages'):
        _host(frozen_stages=2)
    with pytest.raises(TypeError, match='is not a tuner'):
        _host(tuners=[dict(type='mmpretrain.LinearClsHead', num_classes=2, in_channels=48)])


def test_swin_host_counts_blocks_across_stages():
    host = TunedSwinTransformer(
        arch=dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4]),
        img_size=64,
        window_size=4,
        out_indices=(0, 1),
    )
    assert [b.dim for b in host.blocks] == [16, 16, 32, 32]
    assert [b.stage for b in host.blocks] == [0, 0, 1, 1]
    outs = host(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 24), (1, 32, 8, 12)]
    assert not any(p.requires_grad for p in host.parameters())


def test_swin_outputs_of_every_stage_load_a_classification_checkpoint(tmp_path):
    """A classification file holds the last stage's norm only: the other stages' output
    norms start at weight 1, bias 0, frozen; a file without even the last norm is
    refused as before."""
    arch = dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4])
    torch.manual_seed(0)
    classifier = TunedSwinTransformer(arch=arch, img_size=64, window_size=4, out_indices=(1,))
    with torch.no_grad():
        classifier.norm1.weight.normal_()
    with classifier.full_state_dict():
        state = {f'backbone.{k}': v for k, v in classifier.state_dict().items()}
    path = tmp_path / 'swin.pth'
    torch.save({'state_dict': state}, path)
    dense = TunedSwinTransformer(
        arch=arch,
        img_size=64,
        window_size=4,
        out_indices=(0, 1),
        pretrained=str(path),
        tuners=[dict(type='mmwst.Mona', bottleneck=4)],
    )
    dense.init_weights()
    torch.testing.assert_close(dense.norm0.weight, torch.ones(16), rtol=0, atol=0)
    torch.testing.assert_close(dense.norm0.bias, torch.zeros(16), rtol=0, atol=0)
    torch.testing.assert_close(dense.norm1.weight, classifier.norm1.weight, rtol=0, atol=0)
    assert not dense.norm0.weight.requires_grad
    del state['backbone.norm1.weight'], state['backbone.norm1.bias']
    torch.save({'state_dict': state}, path)
    broken = TunedSwinTransformer(
        arch=arch, img_size=64, window_size=4, out_indices=(0, 1), pretrained=str(path)
    )
    with pytest.raises(ValueError, match='norm'):
        broken.init_weights()


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = _host(tuners=[dict(type='mmwst.LoRA', rank=2)]).train()
    plain.out_type = 'cls_token'
    for p in plain.tuners.parameters():
        torch.nn.init.normal_(p, std=0.1)
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    x = torch.randn(2, 3, 32, 32)
    grads, calls = [], []
    for model in (plain, checkpointed):
        runs, forward = [], model.layers[0].forward
        model.layers[0].forward = lambda *a, forward=forward, runs=runs: (
            runs.append(1) or forward(*a)
        )
        model.zero_grad()
        model(x)[0].pow(2).sum().backward()
        grads.append([p.grad.clone() for p in model.tuners.parameters()])
        calls.append(len(runs))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # checkpointing really ran: the block was computed again during the backward pass
    assert calls == [1, 2]


@pytest.mark.parametrize('alone', ['mmwst.FullFineTune', 'mmwst.LinearProbe'])
@pytest.mark.parametrize('other', ['mmwst.LoRA', 'mmwst.FullFineTune', 'mmwst.LinearProbe'])
def test_tuners_that_contradict_any_other_are_refused_at_build(alone, other):
    from mmwst.models import TunedVisionTransformer

    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    tuners = [dict(type=alone), dict(type=other)]
    name = alone.split('.')[1]
    with pytest.raises(ValueError, match=f'{name} cannot be combined with .*Keep only one'):
        TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=tuners)
    TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=tuners[:1])  # alone: fine


def test_a_pretrained_file_of_another_architecture_names_the_file_and_the_arch(tmp_path):
    """ViT-L weights into a ViT-B used to say only 'width 1024 differs from 768'."""
    import torch

    from mmwst.models import TunedVisionTransformer

    large = dict(embed_dims=96, num_layers=3, num_heads=2, feedforward_channels=192)
    source = TunedVisionTransformer(arch=large, img_size=32, patch_size=8)
    with source.full_state_dict():
        torch.save({'state_dict': source.state_dict()}, tmp_path / 'other.pth')
    small = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    model = TunedVisionTransformer(
        arch=small, img_size=32, patch_size=8, pretrained=str(tmp_path / 'other.pth')
    )
    with pytest.raises(ValueError) as err:
        model.init_weights()
    message = str(err.value)
    assert f'the pretrained file {tmp_path / "other.pth"} does not fit' in message
    assert 'holds a ViT of width 96 with 3 layers, MLP 192, patch 8' in message
    assert 'arch=dict(embed_dims=96, num_layers=3' in message


def test_adapter_only_loads_read_the_pretrained_file_once(tmp_path, monkeypatch):
    """The frozen host already holds the file's weights after init_weights; loading an
    adapter-only checkpoint takes them from there, until a merge changes the host."""
    import torch

    from mmwst.models import TunedVisionTransformer

    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    source = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8)
    with source.full_state_dict():
        torch.save({'state_dict': source.state_dict()}, tmp_path / 'base.pth')
    model = TunedVisionTransformer(
        arch=arch,
        img_size=32,
        patch_size=8,
        pretrained=str(tmp_path / 'base.pth'),
        tuners=[dict(type='mmwst.LoRA')],
    )
    reads = []
    original = type(model)._read_pretrained
    monkeypatch.setattr(
        type(model),
        '_read_pretrained',
        lambda self, path: reads.append(path) or original(self, path),
    )
    model.init_weights()
    adapters = model.state_dict()
    for _ in range(3):
        model.load_state_dict(adapters)
    assert len(reads) == 1
    model.merge_tuners()  # the host now differs from the file: the next load reads it
    model.unmerge_tuners()
    model.load_state_dict(adapters)
    assert len(reads) == 2


def test_avg_featmap_on_a_file_without_its_norm_names_the_output_type():
    """The shipped ViT into a host with out_type='avg_featmap': mmpretrain adds a norm
    (ln2) the file lacks. The message used to advise the arch the host already had."""
    from mmwst.models import TunedVisionTransformer
    from mmwst.weights import shipped_vit_host

    model = TunedVisionTransformer(**shipped_vit_host(out_type='avg_featmap'))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    message = str(err.value)
    assert 'backbone.ln2.weight' in message
    assert "out_type='avg_featmap' adds a norm of its own (ln2)" in message
    assert "build the host with out_type='avg_patch'" in message
    assert 'arch=' not in message  # the architecture is right
    # the advised output type fits the file
    TunedVisionTransformer(**shipped_vit_host(out_type='avg_patch')).init_weights()


# ---- the one walk over the blocks, on every host -------------------------------------------
class _StrayToken(BaseTuner):
    """Inserts one token before block 0 and never removes it (a broken tuner)."""

    supported_hosts = ('vit', 'swin', 'sam')

    def before_block(self, index, x, ctx):
        if index:
            return x
        ctx.num_prefix += 1
        return torch.cat([x[:, :1], x], dim=1)


class _Probe(BaseTuner):
    """Records which hooks ran, in order, with the token count each saw."""

    supported_hosts = ('vit', 'swin', 'sam')

    def __init__(self):
        super().__init__()
        self.seen = []

    def before_blocks(self, x, ctx):
        self.seen.append(('before_blocks', None, x.shape[1]))
        return x

    def before_block(self, index, x, ctx):
        self.seen.append(('before_block', index, x.shape[1]))
        return x

    def after_block(self, index, x, ctx):
        self.seen.append(('after_block', index, x.shape[1]))
        return x

    def after_blocks(self, x, ctx):
        self.seen.append(('after_blocks', None, x.shape[1]))
        return x


@pytest.mark.parametrize('kind', TABLE_HOSTS)
def test_every_host_runs_the_hooks_in_one_order(kind):
    """before_blocks, then before/after each block (numbered across Swin's stages, each
    seeing its stage's grid), then after_blocks once, on every host alike."""
    probe = _Probe()
    model = build_host(kind, [probe]).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, *SIZES[kind][0]))
    n = len(blocks(kind))
    names = [(hook, index) for hook, index, _ in probe.seen]
    assert names == [('before_blocks', None)] + [
        (hook, i) for i in range(n) for hook in ('before_block', 'after_block')
    ] + [('after_blocks', None)]
    counts = [c for hook, _, c in probe.seen if hook == 'before_block']
    assert counts == [c for hook, _, c in probe.seen if hook == 'after_block']
    if kind == 'swin':  # each stage's grid, smaller after each patch merging
        assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    else:
        assert len(set(counts)) == 1


@pytest.mark.parametrize('kind', ['vit', 'dinov2', 'eva02'])
def test_a_token_left_behind_is_named_on_every_host(kind):
    model = build_host(kind, [_StrayToken()]).eval()
    with pytest.raises(RuntimeError, match='left 1 inserted tokens'):
        with torch.no_grad():
            model(torch.randn(1, 3, *SIZES[kind][0]))


@pytest.mark.parametrize(('kind', 'why'), [('sam', "SAM's windowed"), ('swin', "Swin's shifted")])
def test_windowed_hosts_refuse_a_token_off_their_grid_at_the_hook_that_adds_it(kind, why):
    model = build_host(kind, [_StrayToken()]).eval()
    message = rf'_StrayToken changed the number of tokens .* in before_block: {why}'
    with pytest.raises(RuntimeError, match=message):
        with torch.no_grad():
            model(torch.randn(1, 3, *SIZES[kind][0]))
