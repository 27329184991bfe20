"""Evaluate a checkpoint on the config's test set.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
                         [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]

Multi-process: tools/dist_test.sh CONFIG CHECKPOINT N.
"""

import argparse
import os
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint (mmwst / OpenMMLab config).')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (a local path)')
    parser.add_argument('--work-dir', help='where to write the evaluation log')
    parser.add_argument('--out', help='also dump the metrics to this JSON file')
    parser.add_argument('--amp', action='store_true', help='run inference under autocast')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config entries, e.g. test_dataloader.batch_size=8',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher for distributed testing',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not os.path.isfile(path):
            sys.exit(f'{what} file {path!r} does not exist')
    from mmengine.runner import Runner

    import mmwst  # noqa: F401
    from mmwst.engine import finish_distributed, prepare_config, safe_loading

    cfg = Config.fromfile(args.config)
    prepare_config(
        cfg,
        config_path=args.config,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        launcher=args.launcher,
    )
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.setdefault('test_cfg', {})['fp16'] = True
    if 'runner_type' in cfg:  # a custom runner class named by the config
        from mmengine.registry import RUNNERS

        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    with safe_loading():  # mmengine reads local checkpoints with weights_only=True
        metrics = runner.test()
    rank = runner.rank
    del runner  # freed by finish_distributed's collection, before the group goes
    finish_distributed()
    if args.out and rank == 0:
        from mmengine.fileio import dump

        dump({k: float(v) if hasattr(v, '__float__') else v for k, v in metrics.items()}, args.out)
    return metrics


if __name__ == '__main__':
    main()
