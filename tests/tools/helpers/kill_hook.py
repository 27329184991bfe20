"""A hook that kills its own process (SIGKILL, no clean-up) after a chosen epoch.

Used to interrupt a training run the hard way, right after the epoch's checkpoint was
written, to test that ``--resume`` continues exactly where it stopped.
"""

import os
import signal

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
