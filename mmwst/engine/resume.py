"""``--resume``: which checkpoint, said plainly; damaged files named; the lr that wins.

* ``--resume auto`` with nothing in the work dir starts from scratch and says so (mmengine
  logged "resumed from None").
* A checkpoint cut short (full disk, killed copy) used to fail deep inside torch with
  ``PytorchStreamReader failed reading zip archive`` and no file name. ``--resume auto``
  now skips a damaged latest checkpoint for the newest intact one in the work dir, naming
  both; ``--resume PATH`` of a damaged file stops, naming it and the intact ones.
* Resuming restores the optimizer and scheduler state, so a learning rate changed in the
  config since the checkpoint was written does not apply; :class:`ResumeNoticeHook` says
  so in the log.
"""

from __future__ import annotations

import glob
import os.path as osp

from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..registry import HOOKS
from .checkpoint import DamagedCheckpointError, checkpoint_is_intact


def _candidates(work_dir: str) -> list[str]:
    """Checkpoints of a work dir, newest first (the one ``last_checkpoint`` names leads)."""
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            named = f.read().strip()
        if named in found:
            found.remove(named)
        if osp.isfile(named):
            found.insert(0, named)
    return found


def choose_resume_checkpoint(work_dir: str) -> str | None:
    """The checkpoint ``--resume auto`` continues from: the latest intact one, or None.

    Logs which one, and every damaged one skipped on the way.
    """
    for path in _candidates(work_dir):
        if checkpoint_is_intact(path):
            print_log(f'--resume auto: resuming from {path}', logger='current')
            return path
        print_log(
            f'--resume auto: {path} is damaged (cut short?) and is skipped; looking for an '
            'earlier checkpoint',
            logger='current',
            level=30,
        )
    print_log(
        f'--resume auto: no intact checkpoint in {work_dir}; training starts from scratch',
        logger='current',
        level=30,
    )
    return None


def check_resume_checkpoint(path: str) -> None:
    """Refuse a damaged ``--resume PATH``, naming the intact checkpoints beside it."""
    if checkpoint_is_intact(path):
        return
    intact = [p for p in _candidates(osp.dirname(osp.abspath(path))) if checkpoint_is_intact(p)]
    alternatives = (
        'intact checkpoints in the same folder, newest first: ' + ', '.join(intact)
        if intact
        else 'no intact checkpoint is beside it'
    )
    raise DamagedCheckpointError(
        f'--resume {path}: the file is damaged (cut short or overwritten) and cannot be '
        f'read; {alternatives}.'
    )


@HOOKS.register_module()
class ResumeNoticeHook(Hook):
    """Log when a resumed run keeps the checkpoint's learning rate over the config's.

    Examples:
        ``tools/train.py`` adds it to every run. A damaged ``--resume`` file is refused
        before anything starts:

        >>> from mmwst.engine.resume import check_resume_checkpoint
        >>> _ = open('epoch_1.pth', 'wb').write(b'a checkpoint cut short')
        >>> check_resume_checkpoint('epoch_1.pth')
        Traceback (most recent call last):
        ...
        mmwst.engine.checkpoint.DamagedCheckpointError: --resume epoch_1.pth: ...
    """

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        groups = (checkpoint.get('optimizer') or {}).get('param_groups') or []
        if not groups or not runner._resume:  # loaded for weights only (load_from)
            return
        saved = groups[0].get('initial_lr', groups[0].get('lr'))
        wanted = runner.cfg.get('optim_wrapper', {}).get('optimizer', {}).get('lr')
        if saved is None or wanted is None or abs(saved - wanted) <= 1e-12 * max(abs(wanted), 1):
            return
        print_log(
            f"resuming keeps the checkpoint's learning rate schedule (base lr {saved:g}); "
            f"the config's lr {wanted:g} does not apply to this run. To train with it, start "
            'a new run that loads the weights only: --cfg-options load_from=CHECKPOINT '
            '(without --resume).',
            logger='current',
            level=30,
        )
