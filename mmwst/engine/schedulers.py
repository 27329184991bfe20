"""The learning-rate curve the released WST, HST and RLRR code trains with."""

from __future__ import annotations

import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from ..registry import PARAM_SCHEDULERS


class WarmupCosineParamScheduler(_ParamScheduler):
    """A cosine curve with a linear warm-up inside it and a cool-down at its floor.

    At step ``t`` (epochs with ``by_epoch=True``, counted from ``begin``), read
    ``delay`` steps late (``u = max(t - delay, 0)``), each parameter group's value is::

        warmup_start + u (v_0 - warmup_start) / warmup          for u < warmup
        eta_min + (v_0 - eta_min) (1 + cos(pi u / cycle)) / 2    for warmup <= u < cycle
        eta_min                                                  for u >= cycle

    with ``v_0`` the group's initial value (the configured lr, times any ``lr_mult``).
    The warm-up sits inside the cosine cycle - the cosine is already at
    ``cos(pi warmup / cycle)`` when it ends - and every step after the cycle (until
    ``end``) stays at ``eta_min``. This is the curve of the released WST, HST and RLRR
    code (a cosine schedule of ``cycle = 100`` epochs, a 10-epoch warm-up from 1e-7
    inside it, then 10 cool-down epochs at the minimum: 110 epochs, the rate set once
    per epoch), which mmengine's chained ``LinearLR`` + ``CosineAnnealingLR`` cannot
    express (they start the cosine after the warm-up, at its top). ``delay=1`` is the
    RLRR release's stepping: its loop steps the scheduler with the just-finished
    epoch's 0-based index, so every epoch trains at the rate meant for the one before
    and the first two both at ``warmup_start``.

    The value depends on ``t`` alone (a closed form), so resuming from any checkpoint
    continues the same curve.

    Args:
        optimizer (Optimizer | OptimWrapper): The wrapped optimizer.
        param_name (str): The parameter to schedule (e.g. ``'lr'``).
        cycle (int): Length of the cosine cycle in steps, warm-up included.
        warmup (int): Warm-up steps inside the cycle. Defaults to 0.
        warmup_start (float): Value at step 0 of the warm-up (the same for every
            group). Defaults to 0.
        eta_min (float): The floor, reached at the end of the cycle. Defaults to 0.
        delay (int): Steps by which the curve is read late. Defaults to 0.
        begin (int): First step of this scheduler. Defaults to 0.
        end (int): Step at which it stops. Defaults to INF.
        last_step (int): For resuming. Defaults to -1.
        by_epoch (bool): Steps are epochs. Defaults to True.
        verbose (bool): Print every change. Defaults to False.
    """

    def __init__(
        self,
        optimizer,
        param_name: str,
        cycle: int,
        warmup: int = 0,
        warmup_start: float = 0.0,
        eta_min: float = 0.0,
        delay: int = 0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        for name, value in (('cycle', cycle), ('warmup', warmup), ('delay', delay)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f'{name} must be a non-negative integer, got {value!r}')
        if cycle < 1 or warmup >= cycle:
            raise ValueError(
                f'the warm-up ({warmup} steps) must end inside the cosine cycle ({cycle} '
                'steps): e.g. cycle=100, warmup=10'
            )
        self.cycle = cycle
        self.warmup = warmup
        self.warmup_start = float(warmup_start)
        self.eta_min = float(eta_min)
        self.delay = delay
        super().__init__(
            optimizer,
            param_name=param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose,
        )

    @classmethod
    def build_iter_from_epoch(
        cls, *args, cycle, warmup=0, delay=0, begin=0, end=INF, epoch_length=None, **kwargs
    ):
        """An iteration-based instance of an epoch-based config (the rate then changes
        every iteration instead of once per epoch)."""
        if not epoch_length or epoch_length < 1:
            raise ValueError(f'epoch_length must be a positive integer, got {epoch_length!r}')
        kwargs.pop('by_epoch', None)
        return cls(
            *args,
            cycle=cycle * epoch_length,
            warmup=warmup * epoch_length,
            delay=delay * epoch_length,
            begin=int(begin * epoch_length),
            end=end if end == INF else int(end * epoch_length),
            by_epoch=False,
            **kwargs,
        )

    def value_at(self, step: int, initial: float) -> float:
        """The value of a group with initial value ``initial`` at ``step``."""
        u = max(step - self.delay, 0)
        if u < self.warmup:
            return self.warmup_start + u * (initial - self.warmup_start) / self.warmup
        if u < self.cycle:
            return (
                self.eta_min
                + (initial - self.eta_min) * (1 + math.cos(math.pi * u / self.cycle)) / 2
            )
        return self.eta_min

    def _get_value(self) -> list[float]:
        return [self.value_at(self.last_step, initial) for initial in self.base_values]


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """:class:`WarmupCosineParamScheduler` on the learning rate.

    Examples:
        >>> import torch
        >>> from mmwst.engine import WarmupCosineLR
        >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
        >>> scheduler = WarmupCosineLR(optimizer, cycle=100, warmup=10, warmup_start=1e-7,
        ...                            eta_min=1e-8, end=110)
        >>> rates = []
        >>> for epoch in range(110):
        ...     rates.append(optimizer.param_groups[0]['lr'])
        ...     optimizer.step()
        ...     scheduler.step()
        >>> rates[0], round(rates[10], 6), rates[100], rates[109]
        (1e-07, 0.009755, 1e-08, 1e-08)
    """
