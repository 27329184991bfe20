"""Hooks that end their own training process abruptly, for tests of what survives.

``KillAfterEpochHook`` kills its process (SIGKILL, no clean-up) right after a chosen
epoch's checkpoint was written, to test that ``--resume`` continues exactly where it
stopped. ``DieHook`` ends the process before training starts, either by a signal
(``how='SIGSEGV'``...) or by ``os._exit`` right after printing a line without a newline
or a flush (``how='exit_unflushed'``), to test that a sweep says how each run ended.
"""

import os
import signal
import sys

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAfterEpochHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook has saved the epoch

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:  # runner.epoch is 0-based until the epoch ends
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class DieHook(Hook):
    def __init__(self, how: str = 'SIGSEGV', code: int = 3):
        self.how, self.code = how, code

    def before_train(self, runner) -> None:
        if self.how == 'exit_unflushed':
            sys.stdout.write('[die] leaving without a newline or a flush')
            os._exit(self.code)
        os.kill(os.getpid(), getattr(signal, self.how))
