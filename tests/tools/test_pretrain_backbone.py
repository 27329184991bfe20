"""tools/pretrain_backbone.py: the pretraining recipe trains, exports and loads back."""

import hashlib
import json
import os.path as osp

import pytest
import torch

from tests.helpers import REPO, TOOLS, run_tool

RECIPE = osp.join(REPO, 'configs', 'pretrain', 'vit-t-p8_fractaldb-256_32px.py')
pytestmark = pytest.mark.slow


def _tiny(classes: int = 8) -> list[str]:
    """A few iterations of the recipe: 8 categories (the recipe reports top-5), 4 images
    each, no cache."""
    options = [
        f'model.head.num_classes={classes}',
        'train_dataloader.batch_size=8',
        'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1',
    ]
    for loader, count in (('train', 32 // classes), ('val', 2), ('test', 2)):
        options += [
            f'{loader}_dataloader.dataset.num_classes={classes}',
            f'{loader}_dataloader.dataset.num_per_class={count}',
            f'{loader}_dataloader.dataset.cache_dir=None',
        ]
    return options


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    work = tmp_path_factory.mktemp('pretrain')
    out = work / 'backbone.safetensors'
    proc = run_tool(
        [
            osp.join(TOOLS, 'pretrain_backbone.py'),
            RECIPE,
            '--work-dir',
            str(work / 'run'),
            '--out',
            str(out),
            '--cfg-options',
            *_tiny(),
        ],
        cwd=REPO,
    )
    return dict(out=out, card=json.loads(out.with_suffix('.json').read_text()), proc=proc)


def test_the_recipe_trains_and_the_card_describes_the_file(exported):
    card = exported['card']
    assert 'Epoch(train) [1][4/4]' in exported['proc'].stdout + exported['proc'].stderr
    assert card['sha256'] == hashlib.sha256(exported['out'].read_bytes()).hexdigest()
    assert card['dtype'] == 'float16' and card['parameters'] == 1_613_440
    assert card['host']['arch'] == dict(
        embed_dims=128, num_layers=8, num_heads=2, feedforward_channels=512
    )
    assert card['recipe'] == 'configs/pretrain/vit-t-p8_fractaldb-256_32px.py'
    assert card['seed'] == 0 and 'accuracy/top1' in card['upstream']
    assert card['command'].startswith('python tools/pretrain_backbone.py configs/pretrain/')


def test_the_export_holds_the_trained_weights_in_fp16(exported):
    from safetensors.torch import load_file

    weights = load_file(str(exported['out']))
    assert all(v.dtype == torch.float16 for v in weights.values())
    ckpt_dir = osp.dirname(str(exported['out']))
    with open(osp.join(ckpt_dir, 'run', 'last_checkpoint')) as f:
        trained = torch.load(f.read().strip(), map_location='cpu', weights_only=True)
    state = trained['state_dict']
    for key, value in weights.items():
        torch.testing.assert_close(value, state[f'backbone.{key}'].half())
    assert not any(k.startswith('head') for k in weights)


def test_the_export_loads_strictly_into_an_mmwst_host(exported):
    from safetensors.torch import load_file

    from mmwst.models.backbones import TunedVisionTransformer

    host = exported['card']['host']
    model = TunedVisionTransformer(**host, pretrained=str(exported['out']))
    model.init_weights()
    weights = load_file(str(exported['out']))
    torch.testing.assert_close(
        model.layers[3].attn.qkv.weight, weights['layers.3.attn.qkv.weight'].float()
    )
    wider = dict(host, arch=dict(host['arch'], embed_dims=192, num_heads=3))
    with pytest.raises(ValueError, match='width 128 differs'):
        TunedVisionTransformer(**wider, pretrained=str(exported['out'])).init_weights()
