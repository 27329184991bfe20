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


# ---- every model of ours compiles whole: fullgraph=True makes a graph break an error ----
def _train_compiled(cfg, config_path, tmp_path, options) -> object:
    from torch._dynamo.utils import counters

    options = {**options, 'compile': dict(backend='eager', fullgraph=True)}
    prepare_config(cfg, config_path=config_path, work_dir=str(tmp_path), cfg_options=options)
    runner = RUNNERS.build(cfg)
    graphs = counters['stats']['unique_graphs']
    runner.train()
    assert runner.model.backbone._compiled_call_impl is not None
    assert counters['stats']['unique_graphs'] > graphs  # Dynamo traced the backbone
    return runner


@pytest.mark.parametrize('method', ['wst', 'hst'])
def test_method_configs_train_compiled_in_one_graph(digits_root, monkeypatch, tmp_path, method):
    """The VTAB-1k configs of WST and HST (the methods whose forward is more than hooks
    on the host's layers) train with compile=dict(fullgraph=True)."""
    path = osp.join(REPO, 'configs', method, 'vit-b16_vtab-1k.py')
    monkeypatch.setenv('VTAB_TASK', 'digits')
    monkeypatch.setenv('VTAB_ROOT', osp.dirname(digits_root))
    cfg = Config.fromfile(path)
    runner = _train_compiled(
        cfg, path, tmp_path, {**tiny_model_options(cfg), **few_iterations_options()}
    )
    assert runner.iter == 2


@pytest.mark.parametrize(
    'config',
    [
        # the detector of configs/wst_coco.py's dense backbone: WST + HST through the ViT
        'demo/dense_modes/through-vit_shapes_cascade_mask_rcnn.py',
        'demo/dense_modes/beside-vit_shapes_upernet.py',
    ],
)
def test_dense_configs_train_compiled_in_one_graph(shapes_root, monkeypatch, tmp_path, config):
    """mmdet's and mmseg's runners with the dense backbone compiled whole."""
    path = osp.join(REPO, 'configs', config)
    monkeypatch.setenv('SHAPES_ROOT', shapes_root)
    cfg = Config.fromfile(path)
    options = {
        'train_dataloader.batch_size': 2,
        'train_dataloader.dataset.indices': 2,
        'val_cfg': None,
        'val_dataloader': None,
        'val_evaluator': None,
        'default_hooks.checkpoint.interval': 100,
        'default_hooks.checkpoint.save_last': False,
        'param_scheduler': [],
        'log_level': 'WARNING',
        # 4 of the shipped ViT's 8 blocks (random weights), one side block per stage:
        # the same graph structure at half the compile time
        'model.backbone.arch.num_layers': 4,
        'model.backbone.pretrained': None,
    }
    if 'max_epochs' in cfg.train_cfg:
        options.update({'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 100})
    else:
        options.update({'train_cfg.max_iters': 1, 'train_cfg.val_interval': 100})
    runner = _train_compiled(cfg, path, tmp_path, options)
    assert runner.iter == 1
