"""Every VTAB-1k config trains a few iterations on the generated digits task.

The configs are used as they are - tuners, head, optimizer, schedule, dataset class -
with the host shrunk to a tiny ViT / Swin and 64x64 inputs, so that all of them run in
about a minute on 2 CPU cores. The full-size models are built in test_baseline_configs.
"""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmwst.engine import prepare_config
from tests.helpers import REPO, few_iterations_options, tiny_model_options

VTAB_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*vtab-1k.py')))
FGVC_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*fgvc.py')))


# How many validation images of each digit: all counts differ, so that an accuracy
# computed against wrong labels cannot come out right by chance where a barely trained
# model predicts one class for every image; 64 in all, so that the percentages are exact.
IMAGES_PER_CLASS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 19)


def _val_indices(task_dir: str, split: str) -> list[int]:
    """Indices into the split's list of the first images of each digit, as many as
    IMAGES_PER_CLASS says."""
    with open(osp.join(task_dir, f'{split}.txt')) as f:
        labels = [int(line.split()[1]) for line in f]
    taken, indices = [0] * len(IMAGES_PER_CLASS), []
    for index, label in enumerate(labels):
        if taken[label] < IMAGES_PER_CLASS[label]:
            taken[label] += 1
            indices.append(index)
    assert tuple(taken) == IMAGES_PER_CLASS, taken
    return indices


def _correct_predictions(runner, dataset_cfg) -> tuple[int, int]:
    """How many of the validation images the runner's model classifies right, against
    the labels of the task's list file (not those the dataset class read from it)."""
    task_dir = osp.abspath(osp.join(dataset_cfg.data_root, dataset_cfg.task))
    with open(osp.join(task_dir, f'{dataset_cfg.split}.txt')) as f:
        labels = {name: int(label) for name, label in map(str.split, f)}
    correct = total = 0
    runner.model.eval()
    with torch.no_grad():
        for batch in runner.val_dataloader:
            for sample in runner.model.val_step(batch):
                name = osp.relpath(sample.img_path, task_dir)
                correct += int(sample.pred_score.argmax()) == labels[name]
                total += 1
    return correct, total


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
    val_images = _val_indices(digits_env, cfg.val_dataloader.dataset.split)
    options['val_dataloader.dataset.indices'] = val_images
    # a message hub of its own: what it holds is this run's (several configs share a file
    # name, the default experiment name's first half)
    options['experiment_name'] = f'{osp.relpath(path, REPO)}-{tmp_path.name}'
    prepare_config(cfg, config_path=path, work_dir=str(tmp_path), cfg_options=options)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    # the accuracy the run's validation after its last epoch reported is that of the
    # trained model's predictions against the labels of the task's list file
    validated = runner.message_hub.get_scalar('val/accuracy/top1').current()
    correct, total = _correct_predictions(runner, cfg.val_dataloader.dataset)
    assert total == len(val_images) == sum(IMAGES_PER_CLASS)
    assert validated == 100.0 * correct / total, (correct, total)


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
    model = MODELS.build(cfg.model).eval()
    # one score per class of the chosen dataset, for each image of a batch
    with torch.no_grad():
        scores = model(torch.zeros(2, 3, 224, 224), mode='tensor')
    assert scores.shape == (2, 196)
