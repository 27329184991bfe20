"""Run methods over VTAB-style tasks and seeds and collect one results table.

    python tools/vtab_sweep.py CONFIG [CONFIG ...] [--suite vtab-1k|mini-vtab]
        [--tasks all|TASK ...] [--seeds 0 [1 2 ...]] [--jobs N] [--protocol test|val]
        [--work-dir work_dirs/vtab_sweep] [--data-root DIR] [--gpus N]
        [--best-epoch] [--report-only] [--cfg-options key=value ...]

Each (method, task, seed) trains in ``<work-dir>/<method>/<task>/seed<k>`` (the method
is named after the config's folder, or ``folder/file`` when several configs share a
folder; a config's ``board_name`` variable, if any, names its row in the table). Runs
whose ``result.json`` exists are skipped, so re-running continues an interrupted sweep
(an interrupted run resumes from its last checkpoint). ``--jobs N`` runs N trainings at
once, each with ``cores / N`` threads (small models use cores better this way than
with one multi-threaded run); each run's output goes to ``sweep.log`` in its folder.
Each training is a process of its own, forked from a server process that has imported
torch, mmengine, mmpretrain and mmwst once (a fresh interpreter spends 4-5 s of a
small run's 26 importing them); a failed run cannot harm the others.
``--gpus N`` runs each training through tools/dist_train.sh with N processes instead.

``--protocol val`` trains on ``train800`` and evaluates on ``val200`` - for choosing a
recipe without touching the test split - and writes to ``<work-dir>`` as usual (use a
separate one). The table - per-task accuracy (mean ± std over seeds), group means, the
mean over tasks and the mean of group means, trainable parameters and minutes per run -
is written as Markdown, CSV and a bar chart PNG to ``<work-dir>/vtab_results.{md,csv,png}``.
Accuracy is the final epoch's; ``--best-epoch`` reports the best epoch instead,
labelled as optimistic (it is chosen on the test set).

The task reaches the config through the VTAB_TASK environment variable (and the data
root through VTAB_ROOT), which every VTAB config reads.
"""

import argparse
import json
import multiprocessing
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = osp.dirname(osp.abspath(__file__))
PROTOCOLS = {
    'test': [],
    'val': [
        'train_dataloader.dataset.split=train800',
        'val_dataloader.dataset.split=val200',
        'test_dataloader.dataset.split=val200',
    ],
}


def method_names(configs: list[str]) -> list[str]:
    folders = [osp.basename(osp.dirname(osp.abspath(c))) for c in configs]
    names = []
    for config, folder in zip(configs, folders):
        stem = osp.splitext(osp.basename(config))[0]
        names.append(folder if folders.count(folder) == 1 else f'{folder}/{stem}')
    return names


def board_names(configs: list[str], names: list[str]) -> dict[str, str]:
    """Row labels: each config's ``board_name`` where it sets one."""
    from mmengine.config import Config

    labels = {}
    for config, name in zip(configs, names):
        label = Config.fromfile(config).get('board_name')
        if label:
            labels[name] = str(label)
    return labels


# what tools/train.py imports while it builds and trains a classifier; the sweep's
# fork server imports these once and every training starts from that state
PRELOAD = [
    'torch',
    'mmengine.runner',
    'mmpretrain.datasets',
    'mmpretrain.engine',
    'mmpretrain.evaluation',
    'mmpretrain.models',
    'mmpretrain.visualization',
    'mmwst',
    'train',
]


def _train_in_child(argv: list[str], env: dict, log_path: str | None, threads: int) -> None:
    """Body of one training process: the run's environment and log, then tools/train.py."""
    os.environ.clear()
    os.environ.update(env)
    if log_path is not None:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    import torch

    if threads:
        torch.set_num_threads(threads)
    import train

    train.main(argv)


def fork_server(threads: int):
    """A multiprocessing context whose processes fork from a server that has imported
    the training stack; the server is started with ``threads`` OpenMP threads (0: the
    library default), which it must know before it imports torch."""
    if threads:
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(threads)
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload(PRELOAD)
    warm_up = context.Process(target=os.getpid)  # returns once the server has imported
    warm_up.start()
    warm_up.join()
    return context


def train_one(
    cmd: list[str],
    env: dict,
    run_dir: str,
    log_to_file: bool,
    context=None,
    threads: int = 0,
) -> tuple[int, float]:
    """Run one training; return its exit code and wall time in seconds.

    With a fork-server ``context``, ``cmd`` is tools/train.py's argument list and the
    training runs in a process forked from the server; otherwise ``cmd`` is a command.
    """
    start = time.time()
    log_path = osp.join(run_dir, 'sweep.log') if log_to_file else None
    if log_to_file:
        os.makedirs(run_dir, exist_ok=True)
    if context is not None:
        process = context.Process(target=_train_in_child, args=(cmd, env, log_path, threads))
        process.start()
        process.join()
        code = process.exitcode
    elif log_path is not None:
        with open(log_path, 'a') as log:
            code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    else:
        code = subprocess.run(cmd, env=env).returncode
    return code, time.time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='one VTAB config per method')
    parser.add_argument('--suite', choices=['vtab-1k', 'mini-vtab'], default='vtab-1k')
    parser.add_argument(
        '--tasks', nargs='+', default=['all'], help="task names or 'all' (the suite's tasks)"
    )
    parser.add_argument('--seeds', nargs='+', type=int, default=[0], help='training seeds')
    parser.add_argument('--jobs', type=int, default=1, help='trainings run at once')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS), default='test')
    parser.add_argument('--work-dir', default='work_dirs/vtab_sweep')
    parser.add_argument('--data-root', help='root of the task folders (sets VTAB_ROOT)')
    parser.add_argument(
        '--gpus', type=int, default=1, help='processes per training (tools/dist_train.sh when > 1)'
    )
    parser.add_argument(
        '--best-epoch',
        action='store_true',
        help='report the best epoch (optimistic: chosen on the test set)',
    )
    parser.add_argument(
        '--report-only', action='store_true', help='only collect finished runs and write the report'
    )
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed on to tools/train.py')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error('--jobs must be at least 1')
    if args.jobs > 1 and args.gpus > 1:
        parser.error('--jobs and --gpus cannot be combined: use one or the other')

    from vtab_report import SUITES, load_results, write_report, write_task_result

    from mmwst.datasets.vtab import EXTRA_TASKS, canonical_task

    suite_tasks = SUITES[args.suite][0]
    if args.tasks == ['all']:
        tasks = list(suite_tasks)
    else:
        tasks = [t if t in EXTRA_TASKS else canonical_task(t) for t in args.tasks]
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'config {config} does not exist')
    names = method_names(args.configs)
    labels = board_names(args.configs, names)

    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'sweep_args.json'), 'w') as f:
        json.dump(
            dict(vars(args), tasks=tasks, methods=dict(zip(names, args.configs))), f, indent=2
        )

    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else 0
    runs = []
    for config, name in zip(args.configs, names):
        for task in tasks:
            for seed in args.seeds:
                run_dir = osp.join(args.work_dir, name, task, f'seed{seed}')
                if args.report_only or osp.isfile(osp.join(run_dir, 'result.json')):
                    continue
                env = dict(os.environ, VTAB_TASK=task)
                if threads:
                    env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
                if args.data_root:
                    env['VTAB_ROOT'] = args.data_root
                if args.gpus > 1:
                    cmd = ['bash', osp.join(HERE, 'dist_train.sh'), config, str(args.gpus)]
                else:  # tools/train.py's arguments, for a process of the fork server
                    cmd = [config]
                options = [f'randomness.seed={seed}', *PROTOCOLS[args.protocol], *args.cfg_options]
                cmd += ['--work-dir', run_dir, '--resume', 'auto', '--cfg-options', *options]
                runs.append((f'{name} / {task} / seed {seed}', cmd, env, run_dir))

    # one training per process: forked from a server that has the stack imported (only
    # started when something is left to train), or launched through tools/dist_train.sh
    context = fork_server(threads) if runs and args.gpus == 1 else None
    failed = []

    def run(item):
        label, cmd, env, run_dir = item
        print(f'[sweep] {label}: training in {run_dir}', flush=True)
        code, seconds = train_one(
            cmd, env, run_dir, log_to_file=args.jobs > 1, context=context, threads=threads
        )
        if code != 0:
            failed.append(label)
            where = f' (log: {osp.join(run_dir, "sweep.log")})' if args.jobs > 1 else ''
            print(f'[sweep] {label}: FAILED with exit code {code}{where}', flush=True)
            return
        result = write_task_result(run_dir, seconds=round(seconds, 1))
        print(
            f'[sweep] {label}: final {result["final"]:.2f}%, best {result["best"]:.2f}% '
            f'({seconds:.0f} s)',
            flush=True,
        )

    start = time.time()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run, runs))
    if runs:
        minutes = (time.time() - start) / 60
        runs_done = f'{len(runs)} run' + ('s' if len(runs) > 1 else '')
        print(f'[sweep] {runs_done} in {minutes:.1f} min of wall time', flush=True)

    methods = {name: load_results(osp.join(args.work_dir, name)) for name in names}
    which = 'best' if args.best_epoch else 'final'
    suffix = '_best_epoch_optimistic' if args.best_epoch else ''
    paths = write_report(
        methods,
        osp.join(args.work_dir, f'vtab_results{suffix}'),
        which,
        names=labels,
        # the suite's averages when every task run is one of its tasks (not for digits)
        suite=args.suite if set(tasks) <= set(suite_tasks) else None,
    )
    print('[sweep] report: ' + ', '.join(paths))
    if failed:
        print(f'[sweep] failed: {", ".join(failed)} (re-run to retry them)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
