"""mmengine's ``compile`` option under mmwst's runner: the backbone is compiled in place
(its checkpoint keys unchanged), mmengine's ``train_step`` is left eager, and a value of
the wrong kind is refused before training."""

import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS

from mmwst.engine import prepare_config
from tests.helpers import REPO, few_iterations_options, tiny_model_options

LORA_VTAB = osp.join(REPO, 'configs', 'lora', 'vit-b16_vtab-1k.py')


def _runner(digits_root, monkeypatch, tmp_path, compile_option):
    monkeypatch.setenv('VTAB_TASK', 'digits')
    monkeypatch.setenv('VTAB_ROOT', osp.dirname(digits_root))
    cfg = Config.fromfile(LORA_VTAB)
    options = {**tiny_model_options(cfg), **few_iterations_options(), 'compile': compile_option}
    prepare_config(cfg, config_path=LORA_VTAB, work_dir=str(tmp_path), cfg_options=options)
    assert cfg.runner_type == 'mmwst.CheckedRunner'
    return RUNNERS.build(cfg)  # as tools/train.py does


def test_compile_compiles_the_backbone_in_place(digits_root, monkeypatch, tmp_path):
    from torch._dynamo.utils import counters

    runner = _runner(digits_root, monkeypatch, tmp_path, dict(backend='eager'))
    model = runner.model
    keys = set(model.state_dict())
    graphs = counters['stats']['unique_graphs']
    runner.train()

    assert model.backbone._compiled_call_impl is not None  # the backbone runs compiled
    assert counters['stats']['unique_graphs'] > graphs  # and Dynamo traced it
    assert 'train_step' not in vars(model)  # mmengine's target is left as it was
    assert set(model.state_dict()) == keys  # no '_orig_mod.': checkpoints load as before
    assert all(k.startswith(('backbone.', 'head.', 'data_preprocessor.')) for k in keys)
    runner.save_checkpoint(str(tmp_path), 'compiled.pth')
    saved = torch.load(osp.join(str(tmp_path), 'compiled.pth'), map_location='cpu')
    assert set(saved['state_dict']) <= keys


def test_compile_of_the_wrong_kind_is_refused(digits_root, monkeypatch, tmp_path):
    runner = _runner(digits_root, monkeypatch, tmp_path, 'inductor')
    with pytest.raises(TypeError, match='give True or a dict of torch.compile arguments'):
        runner.train()
    assert runner.iter == 0
