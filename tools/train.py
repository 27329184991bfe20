"""Train a model from a config with an mmengine runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|CHECKPOINT]] [--amp]
                                 [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]

Multi-process / multi-machine: tools/dist_train.sh CONFIG N (torchrun) or
tools/slurm_train.sh. Checkpoints go to the work dir (default ./work_dirs/<config name>).
"""

import argparse
import os
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (mmwst / OpenMMLab config).')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where to write logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help="resume training: with no value or 'auto', from the latest "
        'checkpoint in the work dir; or from the given checkpoint path',
    )
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision (fp16 on CUDA, bf16 on CPU)'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config entries, e.g. train_cfg.max_epochs=5',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher for distributed training',
    )
    parser.add_argument(
        '--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS
    )  # torch.distributed.launch compatibility
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.config):
        sys.exit(f'config file {args.config!r} does not exist')
    from mmengine.runner import Runner

    import mmwst  # noqa: F401  (checks the installed stack, registers mmwst)
    from mmwst.engine import DivergedError, finish_distributed, prepare_config, safe_loading

    cfg = Config.fromfile(args.config)
    prepare_config(
        cfg,
        config_path=args.config,
        work_dir=args.work_dir,
        resume=args.resume,
        amp=args.amp,
        cfg_options=args.cfg_options,
        launcher=args.launcher,
    )
    if 'runner_type' in cfg:  # a custom runner class named by the config
        from mmengine.registry import RUNNERS

        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    try:
        with safe_loading():  # mmengine reads local checkpoints with weights_only=True
            runner.train()
    except DivergedError as err:
        sys.exit(f'[mmwst] {err}')
    del runner  # freed by finish_distributed's collection, before the group goes
    finish_distributed()


if __name__ == '__main__':
    main()
