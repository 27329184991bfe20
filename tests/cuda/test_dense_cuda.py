"""The shapes demos' detector and segmentor train a few iterations on the GPU.

``configs/demo/shapes_cascade_mask_rcnn.py`` (Cascade Mask R-CNN, mmdet) and
``configs/demo/shapes_upernet.py`` (UperNet, mmseg), both on the dense backbone (the
shipped frozen ViT-T/8 with WST's branch and its pyramid; the segmentor also with HST's
side network), train through the
config's runner - as ``tools/train.py`` builds it - on 64x64 shapes images generated
into the test's folder: batch 2, 4 iterations, no validation, no scheduler. Every loss is
finite and the whole model sits on the device. Without weight decay (so that only a
gradient moves a parameter), every trainable parameter of the backbone (WST, the side
network, the ViT's LayerNorms that HST trains) and every other parameter that got a
non-zero gradient changed, and every frozen one is bit-identical to what it was when
training started (after the pretrained weights were loaded). At 64 pixels the detector's
upper FPN outputs (strides 16 and 32: anchors of 64 and 128 pixels, for objects of 10 to
29) may see no sampled anchor in 4 iterations, so their convolutions may get no gradient.
"""

from __future__ import annotations

import math
import os.path as osp
from functools import partial

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from tests.helpers import REPO

pytestmark = pytest.mark.cuda

IMAGE_SIZE = 64
NUM_TRAIN = 8
BATCH = 2
ITERATIONS = NUM_TRAIN // BATCH


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory) -> str:
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    root = str(tmp_path_factory.mktemp('shapes'))
    write_shapes_dataset(root, num_train=NUM_TRAIN, num_val=2, image_size=IMAGE_SIZE, seed=0)
    return root


class Probe(Hook):
    """Records the parameters when training starts, which got a non-zero gradient, and
    every iteration's losses."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.trainable: set[str] = set()
        self.had_grad: set[str] = set()
        self.losses: list[dict[str, float]] = []
        self.devices: set[str] = set()

    def before_train(self, runner) -> None:
        model = runner.model
        self.devices = {t.device.type for t in [*model.parameters(), *model.buffers()]}
        for name, param in model.named_parameters():
            self.start[name] = param.detach().clone()
            if param.requires_grad:
                self.trainable.add(name)
                param.register_post_accumulate_grad_hook(partial(self._gradient, name))

    def _gradient(self, name: str, param: torch.Tensor) -> None:
        if name not in self.had_grad and param.grad is not None and bool(param.grad.any()):
            self.had_grad.add(name)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(
            {k: float(torch.as_tensor(v).detach()) for k, v in outputs.items() if 'loss' in k}
        )


def _train(path: str, shapes_root: str, work_dir: str, options: dict, monkeypatch) -> tuple:
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    monkeypatch.setenv('SHAPES_ROOT', shapes_root)  # read by the config
    cfg = Config.fromfile(osp.join(REPO, path))
    cfg.merge_from_dict(
        {
            'train_dataloader.batch_size': BATCH,
            'param_scheduler': [],
            'optim_wrapper.optimizer.weight_decay': 0.0,  # a change means a gradient
            'default_hooks.logger.interval': 1,
            'default_hooks.checkpoint.interval': 1000,
            'default_hooks.checkpoint.save_last': False,
            'log_level': 'WARNING',
            **options,
        }
    )
    cfg.work_dir = work_dir
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    probe = Probe()
    runner.register_hook(probe)
    runner.train()
    return runner, probe


def _check_run(runner, probe: Probe, device: str) -> None:
    assert probe.devices == {torch.device(device).type}
    assert len(probe.losses) == ITERATIONS and runner.iter == ITERATIONS
    for step, losses in enumerate(probe.losses):
        finite = all(math.isfinite(v) for v in losses.values())
        assert finite and losses['loss'] > 0, (step, losses)
    params = dict(runner.model.named_parameters())
    trainable = probe.trainable
    tuned = {n for n in trainable if n.startswith('backbone.')}
    assert tuned, 'nothing of the backbone trains'
    changed = {n for n, p in params.items() if not torch.equal(p, probe.start[n])}
    assert not tuned - changed, f'backbone parameters that did not change: {tuned - changed}'
    assert not probe.had_grad - changed, f'no change despite a gradient: {probe.had_grad - changed}'
    assert not changed - trainable, f'frozen parameters that changed: {changed - trainable}'
    # what stays frozen: the ViT's weights (HST trains its LayerNorms only)
    backbone = runner.model.backbone
    host = {n for n, p in backbone.host_named_parameters() if not p.requires_grad}
    assert any(n.startswith('layers.') and n.endswith('ffn.layers.1.weight') for n in host)


def _check_mmcv_ops(device: str) -> None:
    """RoIAlign and NMS on the device: mmcv must be built with its ops for it."""
    from mmcv.ops import RoIAlign, nms

    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [1.0, 1.0, 9.0, 9.0]], device=device)
    try:
        nms(boxes, torch.tensor([0.9, 0.8], device=device), 0.5)
        rois = torch.tensor([[0.0, 0.0, 0.0, 8.0, 8.0]], device=device)
        RoIAlign((2, 2), 1.0)(torch.ones(1, 1, 8, 8, device=device), rois)
    except (RuntimeError, NotImplementedError) as err:
        pytest.fail(
            f'mmcv {__import__("mmcv").__version__} has no {device} ops (RoIAlign, nms): '
            f'{err}. Rebuild it with its CUDA ops (requirements/runtime.txt).'
        )


def test_detector_trains_on_the_device(shapes_root, tmp_path, runner_device, monkeypatch):
    _check_mmcv_ops(runner_device)
    torch.manual_seed(0)
    runner, probe = _train(
        'configs/demo/shapes_cascade_mask_rcnn.py',
        shapes_root,
        str(tmp_path),
        {
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 100,
            'model.backbone.img_size': IMAGE_SIZE,
            # fewer RoIs: a few-step check, not a recipe
            'model.train_cfg.rpn_proposal.max_per_img': 32,
            **{f'model.train_cfg.rcnn.{i}.sampler.num': 32 for i in range(3)},
        },
        monkeypatch,
    )
    _check_run(runner, probe, runner_device)
    assert {'loss_rpn_cls', 's0.loss_cls', 's2.loss_mask'} <= set(probe.losses[0])


def test_segmentor_trains_on_the_device(shapes_root, tmp_path, runner_device, monkeypatch):
    torch.manual_seed(0)
    runner, probe = _train(
        'configs/demo/shapes_upernet.py',
        shapes_root,
        str(tmp_path),
        {
            'train_cfg.max_iters': ITERATIONS,
            'train_cfg.val_interval': 1000,
            'model.backbone.img_size': IMAGE_SIZE,
            'model.data_preprocessor.size': (IMAGE_SIZE, IMAGE_SIZE),
        },
        monkeypatch,
    )
    _check_run(runner, probe, runner_device)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(probe.losses[0])
