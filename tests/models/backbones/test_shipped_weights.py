"""The shipped pretrained ViT: the file its card describes, strict loading, and features
that know more than a random ViT's."""

import hashlib
import importlib.util
import os.path as osp

import pytest
import torch

from tests.helpers import TOOLS


def _probe_module():
    spec = importlib.util.spec_from_file_location(
        'linear_probe', osp.join(TOOLS, 'linear_probe.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_file_is_the_one_its_card_describes():
    from mmwst.weights import shipped_vit, shipped_vit_card

    card = shipped_vit_card()
    data = open(shipped_vit(), 'rb').read()
    assert hashlib.sha256(data).hexdigest() == card['sha256']
    assert len(data) == card['bytes'] < 4 * 2**20  # a few MB
    assert card['recipe'] == 'configs/pretrain/vit-t-p8_fractaldb-256_32px.py'
    assert card['command'].startswith('python tools/pretrain_backbone.py ' + card['recipe'])
    assert card['upstream']['accuracy/top1'] > 20  # 256 categories: chance is 0.4%


def test_it_loads_strictly_through_pretrained_and_fills_every_weight():
    from safetensors.torch import load_file

    from mmwst.models.backbones import TunedVisionTransformer
    from mmwst.weights import shipped_vit, shipped_vit_host

    weights = load_file(shipped_vit())
    model = TunedVisionTransformer(**shipped_vit_host(), tuners=[dict(type='mmwst.LoRA')])
    model.init_weights()
    state = model.state_dict()  # adapter-only: the frozen host is left out ...
    assert not any(k in state for k in weights)
    with model.full_state_dict():
        full = model.state_dict()
    for key, value in weights.items():  # ... and holds exactly the file's values
        torch.testing.assert_close(full[key], value.float(), rtol=0, atol=0)
    # a host of another width refuses the file, naming what does not fit
    other = dict(shipped_vit_host(), arch=dict(shipped_vit_host()['arch'], embed_dims=192))
    with pytest.raises(ValueError, match='width 128 differs'):
        TunedVisionTransformer(**other).init_weights()


@pytest.mark.slow
def test_a_linear_probe_on_a_generated_task_beats_a_random_vit_by_far(tmp_path):
    """dsprites_loc (16 x-position bins): pretrained features locate the sprite."""
    from mmwst.datasets import write_mini_vtab
    from mmwst.weights import shipped_vit, shipped_vit_host

    write_mini_vtab(str(tmp_path), tasks=['dsprites_loc'], num_test=500)
    probe = _probe_module()
    host = {k: v for k, v in shipped_vit_host().items() if k != 'pretrained'}
    scores = {}
    for name, weights in (('pretrained', shipped_vit()), ('random', None)):
        model = probe.build_backbone(weights, host, seed=0)
        scores[name] = probe.probe(model, str(tmp_path), ['dsprites_loc'])['dsprites_loc']
    assert scores['pretrained']['test'] > scores['random']['test'] + 10, scores
    # deterministic: the same backbone probes to the same figure again, and a board row
    # of it (a sweep's layout without seeds) holds it as the run's final accuracy
    again = probe.probe(
        probe.build_backbone(shipped_vit(), host, seed=5), str(tmp_path), ['dsprites_loc']
    )
    assert again['dsprites_loc']['test'] == scores['pretrained']['test']
    assert again['dsprites_loc']['C'] == scores['pretrained']['C']
    from tools.vtab_report import load_results

    probe.write_runs(again, str(tmp_path / 'board' / 'probe'), 'a probe')
    (run,) = load_results(str(tmp_path / 'board' / 'probe'))['dsprites_loc'].values()
    assert run['final'] == scores['pretrained']['test'] and run['label'] == 'a probe'
    assert run['trainable_without_head'] == 0 and run['deterministic']
