"""Every VTAB-1k config trains a few iterations on the generated digits task.

The configs are used as they are - tuners, head, optimizer, schedule, dataset class -
with the host shrunk to a tiny ViT / Swin and 64x64 inputs, so that all of them run in
about a minute on 2 CPU cores. The full-size models are built in test_baseline_configs.
"""

import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmwst.engine import prepare_config
from tests.helpers import REPO, few_iterations_options, tiny_model_options

VTAB_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*vtab-1k.py')))
FGVC_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*fgvc.py')))


@pytest.fixture
def digits_env(digits_root, monkeypatch):
    monkeypatch.setenv('VTAB_TASK', 'digits')
    monkeypatch.setenv('VTAB_ROOT', osp.dirname(digits_root))
    return digits_root


@pytest.mark.parametrize('path', VTAB_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_vtab_config_trains_on_the_digits_task(path, digits_env, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.vtab_task == 'digits' and cfg.model.head.num_classes == 10
    options = {**tiny_model_options(cfg), **few_iterations_options()}
    prepare_config(cfg, config_path=path, work_dir=str(tmp_path), cfg_options=options)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    metrics = runner.val_loop.run()
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


def test_task_option_sets_classes_paths_and_work_dir(monkeypatch, tmp_path):
    monkeypatch.setenv('VTAB_TASK', 'SmallNORB-Elevation')
    monkeypatch.setenv('VTAB_ROOT', '/data/vtab')
    path = osp.join(REPO, 'configs', 'rlrr', 'vit-b16_vtab-1k.py')
    cfg = Config.fromfile(path)
    assert cfg.model.head.num_classes == 9
    assert cfg.train_dataloader.dataset.data_root == '/data/vtab'
    # RLRR's released smallnorb_ele setting: lr 1e-3, drop 0.3, wd 5e-5, flip
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.model.backbone.tuners[0].branch_drop_rate == 0.3
    assert any(t.type == 'RandomFlip' for t in cfg.train_dataloader.dataset.pipeline)
    prepare_config(cfg, config_path=path)
    assert cfg.work_dir.endswith(osp.join('vit-b16_vtab-1k', 'SmallNORB-Elevation'))


@pytest.mark.parametrize('path', FGVC_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_fgvc_config_follows_the_dataset_option(path, monkeypatch):
    from mmengine.registry import MODELS, init_default_scope

    monkeypatch.setenv('FGVC_DATASET', 'stanford_cars')
    cfg = Config.fromfile(path)
    assert cfg.model.head.num_classes == 196
    assert cfg.train_dataloader.dataset.split == 'trainval'
    init_default_scope('mmpretrain')
    cfg.merge_from_dict(tiny_model_options(cfg))
    assert MODELS.build(cfg.model) is not None
