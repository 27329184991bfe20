"""Stop a diverged run at once, and never let a non-finite model into a checkpoint.

A run whose loss becomes NaN or infinite keeps going under mmengine: it ends with exit
status 0, every later checkpoint holds NaN weights, and ``max_keep_ckpts`` deletes the
last good ones to make room for them. :class:`DivergenceGuardHook` (added to every run by
:func:`~mmwst.engine.prepare_config`) prevents both:

* after every training iteration it checks the loss; the first non-finite value stops
  the run with :class:`DivergedError`, naming the iteration, the last finite loss, the
  learning rate and the last good checkpoint in the work dir;
* before every checkpoint is written it checks the model's tensors; a non-finite one
  stops the run before anything is written, so no good checkpoint is ever removed to
  make room for a broken one.
"""

from __future__ import annotations

import math
import os.path as osp

import torch
from mmengine.hooks import Hook

from ..registry import HOOKS


class DivergedError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights."""


def _last_checkpoint(work_dir: str) -> str | None:
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


@HOOKS.register_module()
class DivergenceGuardHook(Hook):
    """Stop training at the first non-finite loss; refuse to save non-finite weights.

    Args:
        check_every (int): Check the loss every this many iterations. Defaults to 1 (the
            check reads one number that the logger reads anyway).

    Examples:
        Every mmwst run has it (``prepare_config`` adds it; the runtime configs list it).
        It refuses to write a checkpoint whose weights are not finite:

        >>> import torch
        >>> from types import SimpleNamespace
        >>> from mmwst.engine import DivergenceGuardHook
        >>> runner = SimpleNamespace(iter=41, epoch=2, work_dir='.', optim_wrapper=None)
        >>> broken = {'state_dict': {'w': torch.tensor([1.0, float('nan')])}}
        >>> DivergenceGuardHook().before_save_checkpoint(runner, broken)
        Traceback (most recent call last):
        ...
        mmwst.engine.divergence.DivergedError: training diverged at iteration 42 ...
    """

    priority = 'ABOVE_NORMAL'  # before the checkpoint hook (NORMAL) in every stage

    def __init__(self, check_every: int = 1) -> None:
        if check_every < 1:
            raise ValueError(f'check_every must be >= 1, got {check_every}')
        self.check_every = check_every
        self.last_finite: float | None = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs or (runner.iter + 1) % self.check_every:
            return
        loss = outputs.get('loss')
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value):
            self.last_finite = value
            return
        raise DivergedError(self._message(runner, f'the loss is {value}'))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', {})
        broken = [
            name
            for name, tensor in state.items()
            if isinstance(tensor, torch.Tensor)
            and tensor.is_floating_point()
            and not torch.isfinite(tensor).all()
        ]
        if broken:
            more = f' and {len(broken) - 5} more' if len(broken) > 5 else ''
            shown = ', '.join(broken[:5]) + more
            raise DivergedError(
                self._message(runner, f'{len(broken)} weights are not finite ({shown})')
                + ' Nothing was written.'
            )

    def _message(self, runner, what: str) -> str:
        wrapper = getattr(runner, 'optim_wrapper', None)
        lrs = wrapper.get_lr() if wrapper is not None else {}
        lr = ', '.join(f'{v[0]:.3g}' for v in lrs.values()) if lrs else 'unknown'
        last = (
            f'{self.last_finite:.4g}' if self.last_finite is not None else 'none (the first loss)'
        )
        good = _last_checkpoint(runner.work_dir)
        where = (
            f'the last good checkpoint is {good} (resume from it with --resume {good}).'
            if good
            else 'no checkpoint was written before.'
        )
        return (
            f'training diverged at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
            f'{what}; the last finite loss was {last} at lr {lr}. The run was stopped; '
            f'{where} Lower the learning rate (optim_wrapper.optimizer.lr) or clip the '
            'gradients (optim_wrapper.clip_grad=dict(max_norm=...)).'
        )
