"""The released learning-rate curve (mmwst.WarmupCosineLR) and the configs that use it."""

from __future__ import annotations

import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS

import mmwst  # noqa: F401  (registers mmwst.WarmupCosineLR)
from mmwst.engine import WarmupCosineLR
from tests.helpers import REPO

LR, START, FLOOR = 1e-2, 1e-7, 1e-8


def released(epoch: int, lr: float = LR) -> float:
    """The released code's rate for an epoch, written from its definition: linear warm-up
    over epochs 0-9 from 1e-7 towards lr, a cosine over 100 epochs counted from epoch 0
    (so the warm-up is inside it), the floor from epoch 100 on."""
    if epoch < 10:
        return START + epoch * (lr - START) / 10
    if epoch < 100:
        return FLOOR + 0.5 * (lr - FLOOR) * (1 + math.cos(math.pi * epoch / 100))
    return FLOOR


def _optimizer(*lrs: float) -> OptimWrapper:
    groups = [dict(params=[torch.nn.Parameter(torch.zeros(1))], lr=lr) for lr in lrs]
    return OptimWrapper(torch.optim.AdamW(groups, lr=lrs[0]))


def _rates(scheduler, optimizer, steps: int, group: int = 0) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[group]['lr'])
        optimizer.step()
        scheduler.step()
    return rates


def test_the_curve_is_the_released_one_epoch_by_epoch():
    optimizer = _optimizer(LR)
    scheduler = WarmupCosineLR(
        optimizer, cycle=100, warmup=10, warmup_start=START, eta_min=FLOOR, end=110
    )
    rates = _rates(scheduler, optimizer, 110)
    for epoch, rate in enumerate(rates):
        assert rate == pytest.approx(released(epoch), rel=1e-12, abs=1e-15), epoch
    # the warm-up ends inside the cosine, below the peak; the last 10 epochs at the floor
    assert rates[10] == pytest.approx(FLOOR + 0.5 * (LR - FLOOR) * (1 + math.cos(math.pi / 10)))
    assert max(rates) < LR and rates[100:] == [FLOOR] * 10


def test_delay_repeats_the_first_rate_as_the_rlrr_release_steps_it():
    optimizer = _optimizer(LR)
    scheduler = WarmupCosineLR(
        optimizer, cycle=100, warmup=10, warmup_start=START, eta_min=FLOOR, delay=1, end=110
    )
    rates = _rates(scheduler, optimizer, 110)
    assert rates[0] == rates[1] == START
    assert rates[2:] == pytest.approx([released(e - 1) for e in range(2, 110)], rel=1e-12)


def test_every_group_follows_its_own_initial_rate_and_resume_continues():
    optimizer = _optimizer(LR, 10 * LR)  # e.g. a head with lr_mult=10
    kwargs = dict(cycle=100, warmup=10, warmup_start=START, eta_min=FLOOR, end=110)
    scheduler = WarmupCosineLR(optimizer, **kwargs)
    _rates(scheduler, optimizer, 37)
    assert optimizer.param_groups[1]['lr'] == pytest.approx(released(37, 10 * LR))
    state = scheduler.state_dict()
    # a fresh optimizer and scheduler, restored from the state: the curve goes on
    resumed_optimizer = _optimizer(LR, 10 * LR)
    for group in resumed_optimizer.param_groups:
        group['initial_lr'] = group['lr']
    resumed = WarmupCosineLR(resumed_optimizer, **kwargs)
    resumed.load_state_dict(state)
    resumed.optimizer = resumed_optimizer
    resumed.step()
    assert resumed_optimizer.param_groups[0]['lr'] == pytest.approx(released(38))


def test_iteration_based_form_matches_the_epochs_at_their_starts():
    optimizer = _optimizer(LR)
    # what the runner builds for convert_to_iter_based=True, 4 iterations an epoch
    scheduler = WarmupCosineLR.build_iter_from_epoch(
        optimizer,
        cycle=100,
        warmup=10,
        warmup_start=START,
        eta_min=FLOOR,
        end=110,
        epoch_length=4,
    )
    assert not scheduler.by_epoch
    rates = _rates(scheduler, optimizer, 440)
    assert rates[::4] == pytest.approx([released(e) for e in range(110)], rel=1e-12)
    assert rates[41] != rates[40]  # per iteration, the rate moves within an epoch


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        (dict(cycle=10, warmup=10), 'must end inside the cosine cycle'),
        (dict(cycle=0), 'must end inside the cosine cycle'),
        (dict(cycle=100, warmup=-1), 'warmup must be a non-negative integer'),
        (dict(cycle=100, delay=0.5), 'delay must be a non-negative integer'),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineLR(_optimizer(LR), **kwargs)


@pytest.mark.parametrize(
    ('config', 'delay'),
    [
        ('configs/wst/vit-b16_vtab-1k.py', 0),
        ('configs/hst/vit-b16_vtab-1k.py', 0),
        ('configs/rlrr/vit-b16_vtab-1k.py', 1),
        ('configs/rlrr/swin-b_vtab-1k.py', 1),
    ],
)
def test_released_configs_train_110_epochs_on_the_released_curve(config, delay):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.train_cfg.max_epochs == 110
    (scheduler,) = cfg.param_scheduler
    assert scheduler.type == 'mmwst.WarmupCosineLR' and scheduler.by_epoch
    assert not scheduler.get('convert_to_iter_based', False)  # once per epoch, as released
    lr = cfg.optim_wrapper.optimizer.lr
    optimizer = _optimizer(lr)
    built = PARAM_SCHEDULERS.build(scheduler, default_args=dict(optimizer=optimizer))
    rates = _rates(built, optimizer, 110)
    expected = [released(max(e - delay, 0), lr) for e in range(110)]
    assert rates == pytest.approx(expected, rel=1e-12)
