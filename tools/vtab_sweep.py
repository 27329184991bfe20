"""Run methods over VTAB-1k tasks and collect one results table.

    python tools/vtab_sweep.py CONFIG [CONFIG ...] [--tasks all|TASK ...]
        [--work-dir work_dirs/vtab_sweep] [--data-root data/vtab-1k] [--gpus N]
        [--best-epoch] [--report-only] [--cfg-options key=value ...]

Each (method, task) trains in ``<work-dir>/<method>/<task>`` (the method is named after
the config's folder, or the file when several configs share a folder), one after
another; ``--gpus N`` runs each through tools/dist_train.sh with N processes. A task
whose ``result.json`` exists is skipped, so re-running continues an interrupted sweep
(an interrupted task resumes from its last checkpoint). The table - per-task accuracy,
group means, the 19-task mean and the mean of group means - is written as Markdown, CSV
and a bar chart PNG to ``<work-dir>/vtab_results.{md,csv,png}``. Accuracy is the
final epoch's; ``--best-epoch`` reports the best epoch instead, labelled as optimistic
(it is chosen on the test set).

The task reaches the config through the VTAB_TASK environment variable (and the data
root through VTAB_ROOT), which every VTAB-1k config reads.
"""

import argparse
import os
import os.path as osp
import subprocess
import sys

HERE = osp.dirname(osp.abspath(__file__))


def method_names(configs: list[str]) -> list[str]:
    folders = [osp.basename(osp.dirname(osp.abspath(c))) for c in configs]
    names = []
    for config, folder in zip(configs, folders):
        stem = osp.splitext(osp.basename(config))[0]
        names.append(folder if folders.count(folder) == 1 else f'{folder}/{stem}')
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='one VTAB-1k config per method')
    parser.add_argument(
        '--tasks',
        nargs='+',
        default=['all'],
        help="task names (aliases accepted) or 'all' for the 19 tasks",
    )
    parser.add_argument('--work-dir', default='work_dirs/vtab_sweep')
    parser.add_argument('--data-root', help='VTAB-1k root (sets VTAB_ROOT)')
    parser.add_argument(
        '--gpus', type=int, default=1, help='processes per task (tools/dist_train.sh when > 1)'
    )
    parser.add_argument(
        '--best-epoch',
        action='store_true',
        help='report the best epoch (optimistic: chosen on the test set)',
    )
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='only collect finished tasks and write the report',
    )
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed on to tools/train.py')
    args = parser.parse_args(argv)

    from mmwst.datasets.vtab import VTAB_TASKS, canonical_task
    from mmwst.utils.vtab_report import load_results, write_report, write_task_result

    extra = {'digits'}  # the generated task (tools/data/make_digits_vtab.py)
    tasks = (
        list(VTAB_TASKS)
        if args.tasks == ['all']
        else [t if t in extra else canonical_task(t) for t in args.tasks]
    )
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'config {config} does not exist')
    names = method_names(args.configs)

    failed = []
    for config, name in zip(args.configs, names):
        for task in tasks:
            task_dir = osp.join(args.work_dir, name, task)
            if args.report_only or osp.isfile(osp.join(task_dir, 'result.json')):
                continue
            env = dict(os.environ, VTAB_TASK=task)
            if args.data_root:
                env['VTAB_ROOT'] = args.data_root
            if args.gpus > 1:
                cmd = ['bash', osp.join(HERE, 'dist_train.sh'), config, str(args.gpus)]
            else:
                cmd = [sys.executable, osp.join(HERE, 'train.py'), config]
            cmd += ['--work-dir', task_dir, '--resume', 'auto']
            if args.cfg_options:
                cmd += ['--cfg-options', *args.cfg_options]
            print(f'[sweep] {name} / {task}: training in {task_dir}', flush=True)
            if subprocess.run(cmd, env=env).returncode != 0:
                failed.append(f'{name}/{task}')
                continue
            result = write_task_result(task_dir)
            print(
                f'[sweep] {name} / {task}: final {result["final"]:.2f}%, '
                f'best {result["best"]:.2f}%',
                flush=True,
            )

    methods = {name: load_results(osp.join(args.work_dir, name)) for name in names}
    which = 'best' if args.best_epoch else 'final'
    suffix = '_best_epoch_optimistic' if args.best_epoch else ''
    paths = write_report(methods, osp.join(args.work_dir, f'vtab_results{suffix}'), which)
    print('[sweep] report: ' + ', '.join(paths))
    if failed:
        print(f'[sweep] failed: {", ".join(failed)} (re-run to retry them)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
