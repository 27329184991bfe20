"""A run stopped after its first epoch resumes on the GPU where it stopped.

The digits demo (``configs/demo/digits_vit_tiny.py``, shrunk as in
tests/tools/test_train_resume.py: 96 training images, batch 16, 6 iterations an epoch)
is set up as ``tools/train.py`` does (:func:`mmwst.engine.prepare_config`, the config's
runner) and trained on the device three times: 2 epochs straight; 1 epoch, which stops;
then 2 epochs with ``--resume auto`` in the stopped run's folder. The resumed run starts
at the checkpoint's epoch and iteration with the checkpoint's optimizer state on the
device, counts on to 12 iterations and AdamW steps, and ends with the straight run's
schedule and, up to 1e-2 of how far the second epoch moved the weights, its weights: on
the CPU they are bit-identical; on the GPU floating-point reductions need not repeat
bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook

from tests.helpers import DEMO_CONFIG, tiny_digits_options

pytestmark = pytest.mark.cuda

TRAIN_IMAGES, BATCH = 96, 16  # tiny_digits_options: train indices and batch size
ITERS_PER_EPOCH = TRAIN_IMAGES // BATCH
WEIGHTS_TOL = 1e-2


class ResumeProbe(Hook):
    """What the run holds when training starts (after resuming) and when it ends."""

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        self.start = _snapshot(runner)

    def after_train(self, runner) -> None:
        self.end = _snapshot(runner)


def _snapshot(runner) -> dict:
    optimizer = runner.optim_wrapper.optimizer
    return dict(
        iter=runner.iter,
        epoch=runner.epoch,
        optimizer={
            index: {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for index, s in enumerate(
                optimizer.state.get(p, {}) for g in optimizer.param_groups for p in g['params']
            )
        },
        lr=[g['lr'] for g in optimizer.param_groups],
        devices={p.device.type for p in runner.model.parameters()},
    )


def _options(digits_root: str, epochs: int) -> dict:
    options = {}
    for item in tiny_digits_options(digits_root, epochs=epochs, train_images=TRAIN_IMAGES):
        key, value = item.split('=', 1)
        options[key] = DictAction._parse_iterable(value)
    options['log_level'] = 'WARNING'
    return options


def _train(work_dir, digits_root: str, epochs: int, resume: str | None = None):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmwst.engine import prepare_config

    cfg = Config.fromfile(DEMO_CONFIG)
    prepare_config(
        cfg,
        config_path=DEMO_CONFIG,
        work_dir=str(work_dir),
        resume=resume,
        cfg_options=_options(digits_root, epochs),
    )
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    probe = ResumeProbe()
    runner.register_hook(probe)
    runner.train()
    return runner, probe


def _load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def test_resumed_run_continues_the_counters_and_optimizer_state(
    digits_root, tmp_path, runner_device
):
    where = torch.device(runner_device).type
    total = 2 * ITERS_PER_EPOCH
    straight, _ = _train(tmp_path / 'straight', digits_root, epochs=2)
    _, first = _train(tmp_path / 'stopped', digits_root, epochs=1)
    assert first.end['iter'] == ITERS_PER_EPOCH and first.end['devices'] == {where}
    saved = _load(tmp_path / 'stopped' / 'epoch_1.pth')
    assert saved['meta']['iter'] == ITERS_PER_EPOCH and saved['meta']['epoch'] == 1

    resumed, probe = _train(tmp_path / 'stopped', digits_root, epochs=2, resume='auto')

    # where it starts: the checkpoint's counters and optimizer state, on the device
    start = probe.start
    assert (start['iter'], start['epoch']) == (ITERS_PER_EPOCH, 1)
    assert start['devices'] == {where}
    state = saved['optimizer']['state']
    assert len(start['optimizer']) == len(state) > 0
    for index, values in start['optimizer'].items():
        assert float(values['step']) == ITERS_PER_EPOCH, index
        for key in ('exp_avg', 'exp_avg_sq'):
            assert values[key].device.type == where, (index, key)
            assert torch.equal(values[key].cpu(), state[index][key]), (index, key)
    assert start['lr'] == [g['lr'] for g in saved['optimizer']['param_groups']]

    # where it ends: counted on, the straight run's schedule and weights
    end = probe.end
    assert (end['iter'], end['epoch']) == (total, 2) == (straight.iter, straight.epoch)
    assert all(float(values['step']) == total for values in end['optimizer'].values())
    assert end['lr'] == [g['lr'] for g in straight.optim_wrapper.optimizer.param_groups]
    assert end['devices'] == {where}

    reference = _load(tmp_path / 'straight' / 'epoch_2.pth')['state_dict']
    halfway = _load(tmp_path / 'straight' / 'epoch_1.pth')['state_dict']
    final = _load(tmp_path / 'stopped' / 'epoch_2.pth')['state_dict']
    assert final.keys() == reference.keys()
    keys = [k for k, v in reference.items() if v.is_floating_point()]
    difference = torch.cat([(final[k] - reference[k]).flatten() for k in keys]).norm()
    moved = torch.cat([(reference[k] - halfway[k]).flatten() for k in keys]).norm()
    assert moved > 0 and difference <= WEIGHTS_TOL * moved, (float(difference), float(moved))
