"""The classification demo on embedded data: generate, train, evaluate, report.

    python tools/demo_classification.py [--work-dir work_dirs/demo_digits]
        [--data-root data/vtab-1k]

Writes scikit-learn's handwritten digits in VTAB-1k layout (if missing), trains the
tiny ViT of configs/demo/digits_vit_tiny.py, evaluates on the 797 held-out images and
prints top-1 accuracy. Re-running resumes an interrupted run and, once training is
complete, only evaluates.
"""

import argparse
import os.path as osp
import sys
import time

from mmengine.config import DictAction

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=osp.join(REPO, 'configs/demo/digits_vit_tiny.py'))
    parser.add_argument('--work-dir', default='work_dirs/demo_digits')
    parser.add_argument('--data-root', default='data/vtab-1k')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='extra key=value config overrides',
    )
    args = parser.parse_args(argv)

    from mmengine.config import Config
    from mmengine.runner import Runner

    import mmwst  # noqa: F401
    from mmwst.datasets.generation.digits import write_digits_vtab
    from mmwst.engine import prepare_config, safe_loading

    start = time.time()
    task_dir = write_digits_vtab(args.data_root)
    print(f'[demo] data: {task_dir}')

    options = dict(args.cfg_options)
    cfg = Config.fromfile(args.config)
    for loader in ('train', 'val', 'test'):
        options.setdefault(f'{loader}_dataloader.dataset.data_root', args.data_root)
    prepare_config(
        cfg, config_path=args.config, work_dir=args.work_dir, resume='auto', cfg_options=options
    )
    runner = Runner.from_cfg(cfg)
    with safe_loading():  # resuming reads checkpoints with weights_only=True
        runner.train()
        metrics = runner.test()
    top1 = metrics.get('accuracy/top1')
    print(f'[demo] finished in {time.time() - start:.0f} s; checkpoints in {args.work_dir}')
    print(
        f'[demo] top-1 accuracy on the {len(runner.test_dataloader.dataset)} test images: '
        f'{top1:.2f}% (chance: 10%)'
    )
    return 0 if top1 is not None else 1


if __name__ == '__main__':
    sys.exit(main())
