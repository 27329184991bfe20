"""Shared set-up for ``tools/train.py`` and ``tools/test.py``.

Turns command-line options into config changes in one place, so that the two entry
points (and any user script) behave the same way:

* ``--work-dir``, ``--resume``, ``--amp``, ``--cfg-options``, ``--launcher``;
* every run gets :class:`~mmwst.engine.SafeCheckpointHook`, so its checkpoints load
  with ``torch.load(weights_only=True)`` and can be resumed under torch >= 2.6, and
  :class:`~mmwst.engine.DivergenceGuardHook`, which stops a run at its first non-finite
  loss and never writes non-finite weights (so no good checkpoint is deleted for them);
* distributed runs without CUDA use the gloo backend and CPU-friendly DDP
  (mmengine 0.10 assumes one GPU per process otherwise).
"""

from __future__ import annotations

import gc
import os
import os.path as osp

import torch
from mmengine.config import Config, ConfigDict

from .data_check import check_required_paths
from .resume import check_resume_checkpoint, choose_resume_checkpoint

SAFE_HOOK = 'mmwst.SafeCheckpointHook'
GUARD_HOOK = 'mmwst.DivergenceGuardHook'
RESUME_HOOK = 'mmwst.ResumeNoticeHook'


def default_work_dir(config_path: str) -> str:
    """``work_dirs/<config name>`` next to where the command runs, OpenMMLab style."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def _cuda() -> bool:
    return torch.cuda.is_available()


def init_cpu_distributed(launcher: str) -> None:
    """Start a gloo process group for ``torchrun`` / slurm when there is no GPU.

    mmengine's own initialisation calls ``torch.cuda.set_device`` first, which fails on
    a machine without a GPU; once a group exists, mmengine uses it as it is.
    """
    if launcher == 'none' or _cuda() or torch.distributed.is_initialized():
        return
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise RuntimeError(
                'a CPU slurm run needs MASTER_ADDR: export it as the host name of the '
                'first node of the allocation, e.g. '
                'MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)'
            )
    elif launcher != 'pytorch':
        raise ValueError(
            f'launcher {launcher!r} needs CUDA here; use --launcher pytorch '
            '(torchrun, tools/dist_train.sh) or slurm on a machine without GPUs'
        )
    torch.distributed.init_process_group(backend='gloo')


def finish_distributed() -> None:
    """End a distributed run cleanly, while the interpreter is fully alive.

    Waits for every process, frees what still holds the process group, then destroys
    the group. Call it after the last reference to the runner is gone.

    An mmengine runner sits in reference cycles (its hooks, loops and message hub point
    back at it), so dropping the last name for it frees nothing: the DDP wrapper, whose
    reducer holds the gloo group, and the data loaders live on until the cyclic garbage
    collector runs - at the latest during interpreter shutdown. Freeing gloo's work
    objects there, after the group was destroyed and while the interpreter tears down,
    aborted the process ("terminate called without an active exception", SIGABRT) -
    seen after training and saving had succeeded, with more processes than cores. The
    collection below frees them here instead.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    torch.distributed.barrier()
    gc.collect()  # the runner's cycles: DDP, its reducer, the loaders' iterators
    torch.distributed.destroy_process_group()
    gc.collect()


def prepare_config(
    cfg: Config,
    *,
    config_path: str,
    work_dir: str | None = None,
    resume: str | None = None,
    amp: bool = False,
    cfg_options: dict | None = None,
    launcher: str = 'none',
    loaders: tuple[str, ...] = ('train', 'val', 'test'),
) -> Config:
    """Apply the common command-line options to ``cfg`` and return it.

    Args:
        cfg: the loaded config (modified in place).
        config_path: path it was loaded from (names the default work dir).
        work_dir: overrides ``cfg.work_dir``; default ``./work_dirs/<config name>``.
        resume: ``'auto'`` to resume from the latest intact checkpoint in the work dir
            (damaged ones are skipped, naming them; with none, training starts from
            scratch and says so), or a checkpoint path (refused, naming the intact
            alternatives, when damaged).
        amp: train with automatic mixed precision (fp16 on CUDA, bf16 on CPU).
        cfg_options: ``key.path=value`` overrides, applied before everything else.
        launcher: ``none``, ``pytorch`` (torchrun), ``slurm`` or ``mpi``.
        loaders: the data loaders the run uses; configs with ``mmwst.CheckPathsHook``
            get their data and weight paths checked for these before anything is built.
    """
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_required_paths(cfg, loaders)  # fail at once, naming every missing file
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(config_path)
        # one folder per task, so that the tasks of one config never share checkpoints
        task = cfg.get('vtab_task') or cfg.get('fgvc_dataset')
        if task:
            cfg.work_dir = osp.join(cfg.work_dir, str(task))

    if resume == 'auto':
        # the latest intact checkpoint, skipping damaged ones; none: from scratch, said so
        cfg.load_from = choose_resume_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    elif resume is not None:
        if not osp.isfile(resume):
            raise FileNotFoundError(
                f'--resume {resume}: no such checkpoint file; pass a '
                "checkpoint path, or 'auto' for the latest one in the "
                'work dir'
            )
        check_resume_checkpoint(resume)
        cfg.resume = True
        cfg.load_from = resume

    if amp:
        optim_wrapper = cfg.get('optim_wrapper')
        if optim_wrapper is None:
            raise ValueError('--amp needs an optim_wrapper in the config (training only)')
        if optim_wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(
                f'--amp works with OptimWrapper; the config uses {optim_wrapper.get("type")!r}'
            )
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
        if not _cuda():  # fp16 autocast is poorly supported on CPU; bf16 needs no scaler
            optim_wrapper.setdefault('dtype', 'bfloat16')

    hooks = list(cfg.get('custom_hooks') or [])
    present = {str(h.get('type', '')).split('.')[-1] for h in hooks}
    for hook in (SAFE_HOOK, GUARD_HOOK, RESUME_HOOK):
        if hook.split('.')[-1] not in present:
            hooks.append(dict(type=hook))
    cfg.custom_hooks = hooks

    if launcher != 'none' and not _cuda():
        env_cfg = cfg.setdefault('env_cfg', ConfigDict())
        env_cfg.setdefault('dist_cfg', ConfigDict())
        env_cfg.dist_cfg.backend = 'gloo'
        wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(type='MMDistributedDataParallel')
        wrapper.device_ids = None  # CPU modules take no device ids
        cfg.model_wrapper_cfg = wrapper
        init_cpu_distributed(launcher)
    return cfg
