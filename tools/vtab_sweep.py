"""Run methods over VTAB-style tasks and seeds and collect one results table.

    python tools/vtab_sweep.py CONFIG [CONFIG ...] [--suite vtab-1k|mini-vtab]
        [--tasks all|TASK ...] [--seeds 0 [1 2 ...]] [--jobs N] [--threads T]
        [--protocol test|val]
        [--work-dir work_dirs/vtab_sweep] [--data-root DIR] [--gpus N]
        [--launcher local|slurm] [--partition P] [--job-name NAME]
        [--best-epoch] [--report-only] [--cfg-options key=value ...]

Each (method, task, seed) trains in ``<work-dir>/<method>/<task>/seed<k>`` (the method
is named after the config's folder, or ``folder/file`` when several configs share a
folder; a config's ``board_name`` variable, if any, names its row in the table). Runs
whose ``result.json`` exists are skipped, so re-running continues an interrupted sweep
(an interrupted run resumes from its last checkpoint) and retries failed runs.
``--jobs N`` runs N trainings at once, each with ``cores / N`` threads (the cores this
process may use; small models use cores better this way than with one multi-threaded
run); ``--threads T`` sets the threads per training instead (the thread count changes
the order of floating-point sums, so fix it to compare results across machines).

Every training is a process of its own (tools/local_runs.py): forked from the sweep
after it imported torch, mmengine, mmpretrain and mmwst once (a fresh interpreter spends
4-5 s of a small run's 20 on those imports), or with ``--gpus N`` started as
tools/dist_train.sh. Its whole output goes to ``sweep.log`` in its folder, which ends
with a line saying how the run ended; a failed run cannot harm the others, and the
summary names each failure with its fate (``exit code 1 after a traceback``,
``killed by SIGSEGV``...). The sweep prints a line as each run ends: runs done of the
total, failures, and an estimate of the time left.

``--launcher slurm`` submits every run that is not finished, queued or running as one
Slurm job array and returns (tools/slurm_runs.py: one task per run, each run's script
and output in its folder, ``result.json`` written by the job when its training ends);
``--jobs N`` then caps the array tasks running at once, ``--gpus N`` (or ``GPUS``) sets
the GPUs per run, and ``--partition``, ``--job-name`` and the environment
(``PARTITION``, ``GPUS_PER_NODE``, ``CPUS_PER_TASK``, ``SRUN_ARGS``, ``SBATCH_ARGS``)
the resources, as in tools/slurm_train.sh. Calling it again submits only the runs that
failed or that Slurm lost; ``--report-only`` writes the table from the runs finished so
far and says how many are still in Slurm's hands.

``--protocol val`` trains on ``train800`` and evaluates on ``val200`` - for choosing a
recipe without touching the test split - and writes to ``<work-dir>`` as usual (use a
separate one). The table - per-task accuracy (mean ± std over seeds), group means, the
mean over tasks and the mean of group means, trainable parameters and minutes per run -
is written as Markdown, CSV and a bar chart PNG to ``<work-dir>/vtab_results.{md,csv,png}``,
and every run (method, task, seed, accuracy, time) to ``<work-dir>/vtab_runs.csv``, from
which ``python tools/vtab_report.py board`` rebuilds the tables with comparisons.
Accuracy is the final epoch's; ``--best-epoch`` reports the best epoch instead,
labelled as optimistic (it is chosen on the test set).

The task reaches the config through the VTAB_TASK environment variable (and the data
root through VTAB_ROOT), which every VTAB config reads.
"""

import argparse
import json
import os
import os.path as osp
import shlex
import sys
import time

import slurm_runs
from local_runs import TRAINING_STACK, Run, preload, run_all, say, threads_per_run

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='one VTAB config per method')
    parser.add_argument('--suite', choices=['vtab-1k', 'mini-vtab'], default='vtab-1k')
    parser.add_argument(
        '--tasks', nargs='+', default=['all'], help="task names or 'all' (the suite's tasks)"
    )
    parser.add_argument('--seeds', nargs='+', type=int, default=[0], help='training seeds')
    parser.add_argument(
        '--jobs',
        type=int,
        help='trainings run at once (default 1; with --launcher slurm: array tasks at once, '
        "default Slurm's limit)",
    )
    parser.add_argument(
        '--threads',
        type=int,
        help='threads per training (default: with --jobs N > 1 the cores this process may '
        'use shared out, else the library default); results depend on it in the last digits',
    )
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS), default='test')
    parser.add_argument('--work-dir', default='work_dirs/vtab_sweep')
    parser.add_argument('--data-root', help='root of the task folders (sets VTAB_ROOT)')
    parser.add_argument(
        '--gpus',
        type=int,
        help='processes (GPUs) per training (default 1; locally tools/dist_train.sh when > 1; '
        'with --launcher slurm, GPUS from the environment when not given)',
    )
    parser.add_argument(
        '--launcher',
        choices=['local', 'slurm'],
        default='local',
        help='local: run the trainings here; slurm: submit them as one Slurm job array',
    )
    parser.add_argument(
        '--partition', help='Slurm partition (default: PARTITION, else the default)'
    )
    parser.add_argument('--job-name', help='Slurm job name (default: JOB_NAME, else vtab_sweep)')
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
    slurm = args.launcher == 'slurm'
    if args.jobs is not None and args.jobs < 1:
        parser.error('--jobs must be at least 1')
    if args.gpus is not None and args.gpus < 1:
        parser.error('--gpus must be at least 1')
    if not slurm and (args.jobs or 1) > 1 and (args.gpus or 1) > 1:
        parser.error('--jobs and --gpus cannot be combined: use one or the other')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    if not slurm and (args.partition or args.job_name):
        parser.error('--partition and --job-name go with --launcher slurm')
    resources = None
    if slurm:
        try:
            resources = slurm_runs.Resources.from_env(
                os.environ,
                partition=args.partition,
                job_name=args.job_name,
                gpus=args.gpus,
                array_limit=args.jobs,
            )
        except ValueError as err:
            parser.error(str(err))
    jobs, gpus = args.jobs or 1, args.gpus or 1

    if slurm:  # the runs' own thread count, set in their scripts
        threads = args.threads or 0
    else:
        threads = args.threads or (threads_per_run(jobs) if jobs > 1 else 0)
    if threads and not slurm:  # before anything imports torch: OpenMP reads it when loaded
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(threads)
    from vtab_report import SUITES, load_results, write_report, write_runs, write_task_result

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
    if not args.report_only:  # the record of how the sweep was run, not of a report
        with open(osp.join(args.work_dir, 'sweep_args.json'), 'w') as f:
            json.dump(
                dict(vars(args), tasks=tasks, methods=dict(zip(names, args.configs))), f, indent=2
            )

    todo = []  # (label, log, environment, tools/train.py arguments)
    run_dirs = []  # every run of the sweep
    for config, name in zip(args.configs, names):
        for task in tasks:
            for seed in args.seeds:
                run_dir = osp.join(args.work_dir, name, task, f'seed{seed}')
                run_dirs.append(run_dir)
                if args.report_only or osp.isfile(osp.join(run_dir, 'result.json')):
                    continue
                env = dict(VTAB_TASK=task)
                if args.data_root:
                    env['VTAB_ROOT'] = args.data_root
                if slurm and threads:
                    env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
                if not slurm:
                    env = dict(os.environ, **env)
                options = [f'randomness.seed={seed}', *PROTOCOLS[args.protocol], *args.cfg_options]
                train_argv = [
                    config,
                    '--work-dir',
                    run_dir,
                    '--resume',
                    'auto',
                    '--cfg-options',
                    *options,
                ]
                label = f'{name} / {task} / seed {seed}'
                todo.append((label, osp.join(run_dir, 'sweep.log'), env, train_argv))
    if args.report_only or slurm:
        # runs Slurm ran: a result the job did not get to write is written here
        states = _slurm_states(run_dirs, write_result=write_task_result)
    if slurm and not args.report_only:
        return _submit(args, todo, states, resources, argv)
    if args.gpus and args.gpus > 1:  # tools/dist_train.sh CONFIG N, then train.py's arguments
        dist = ['bash', osp.join(HERE, 'dist_train.sh')]
        runs = [Run(*run[:3], cmd=[*dist, run[3][0], str(gpus), *run[3][1:]]) for run in todo]
    elif todo:  # forked from this process once it has imported the stack (only then)
        preload(TRAINING_STACK)
        import train

        runs = [Run(*run[:3], target=train.main, argv=run[3], threads=threads) for run in todo]
    else:
        runs = []

    progress = Progress(len(runs), jobs)

    def started(run: Run) -> None:
        say(f'[sweep] {run.label}: training in {osp.dirname(run.log)}')

    def ended(run: Run, fate) -> None:
        if fate.ok:
            result = write_task_result(osp.dirname(run.log), seconds=round(fate.seconds, 1))
            say(
                f'[sweep] {run.label}: final {result["final"]:.2f}%, best {result["best"]:.2f}% '
                f'({fate.seconds:.0f} s)'
            )
        else:
            say(f'[sweep] {run.label}: FAILED, {fate.describe()} (log: {run.log})')
        say(progress.update(fate))

    fates = run_all(runs, jobs, on_start=started, on_end=ended)
    failed = [(run, fate) for run, fate in zip(runs, fates) if not fate.ok]
    if runs:
        say(f'[sweep] {progress.summary()}')

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
    runs_csv = osp.join(args.work_dir, 'vtab_runs.csv')
    write_runs(methods, runs_csv, labels)
    say('[sweep] report: ' + ', '.join([*paths, runs_csv]))
    if args.report_only and any(state.job for state in states.values()):
        say(_slurm_summary(states))
    if failed:
        lines = [f'[sweep] failed: {len(failed)} of {len(runs)} runs (re-run to retry them):']
        lines += [
            f'[sweep]   {run.label}: {fate.describe()} (log: {run.log})' for run, fate in failed
        ]
        say('\n'.join(lines), sys.stderr)
        return 1
    return 0


def _slurm_states(run_dirs: list[str], write_result) -> dict[str, slurm_runs.RunState]:
    """The state of every run submitted to Slurm (tools/slurm_runs.py); a run whose job
    trained it but did not store its result gets its ``result.json`` now."""
    alive = slurm_runs.tasks_alive(run_dirs)
    states = {}
    for run_dir in run_dirs:
        state = slurm_runs.run_state(run_dir, alive)
        if state.state == 'ended':
            extra = {} if state.seconds is None else dict(seconds=state.seconds)
            try:
                write_result(run_dir, **extra)
                state = slurm_runs.RunState('finished', state.job, state.code, state.seconds)
            except (OSError, ValueError) as err:
                say(f'[sweep] {run_dir}: trained, but no result could be read: {err}')
                state = slurm_runs.RunState('failed', state.job, state.code, state.seconds)
        states[run_dir] = state
    return states


def _slurm_summary(states: dict[str, slurm_runs.RunState]) -> str:
    counts = {}
    for state in states.values():
        counts[state.state] = counts.get(state.state, 0) + 1
    words = dict(finished='finished', in_slurm='queued or running', failed='failed')
    words['pending'] = 'not submitted (or lost by Slurm)'
    parts = [f'{counts[key]} {word}' for key, word in words.items() if counts.get(key)]
    return f'[sweep] Slurm runs: {", ".join(parts)}'


def _submit(args, todo, states, resources, argv) -> int:
    """Submit the runs that are neither finished nor queued or running as one job array."""
    submit = []
    for label, log, env, train_argv in todo:
        run_dir = osp.dirname(log)
        state = states[run_dir]
        if state.state == 'in_slurm':
            say(f'[sweep] {label}: queued or running as Slurm job {state.job}; left as it is')
        elif state.state != 'finished':
            if state.state == 'failed':
                say(f'[sweep] {label}: failed as Slurm job {state.job} ({state.code}); again')
            submit.append(slurm_runs.SlurmRun(label, run_dir, env, train_argv))
    if not submit:
        say('[sweep] nothing to submit')
    else:
        try:
            job = slurm_runs.submit(submit, resources, args.work_dir)
        except RuntimeError as err:
            say(f'[sweep] {err}', sys.stderr)
            return 1
        runs = f'{len(submit)} run' + ('s' if len(submit) != 1 else '')
        say(
            f'[sweep] submitted {runs} as Slurm job array {job} (tasks 0-{len(submit) - 1}); '
            'each run logs to sweep.log in its folder'
        )
    # as the files say now, without asking Slurm again
    say(_slurm_summary({d: slurm_runs.run_state(d, None) for d in states}))
    script, given = (sys.argv[0], sys.argv[1:]) if argv is None else (__file__, argv)
    command = ' '.join(shlex.quote(a) for a in ['python', script, *given, '--report-only'])
    say(f'[sweep] when they are done, write the table with: {command}')
    return 0


class Progress:
    """Runs done of the total, failures, and the time left at the pace so far."""

    def __init__(self, total: int, jobs: int) -> None:
        self.total, self.jobs = total, jobs
        self.done = self.failed = 0
        self.start = time.monotonic()

    def update(self, fate) -> str:
        self.done += 1
        self.failed += not fate.ok
        elapsed = time.monotonic() - self.start
        left = self.total - self.done
        text = f'[sweep] {self.done}/{self.total} runs done'
        if self.failed:
            text += f', {self.failed} failed'
        if left:
            # wall time per finished run so far, for the runs still to go
            text += f', about {_minutes(elapsed / self.done * left)} left'
        return text

    def summary(self) -> str:
        runs = f'{self.total} run' + ('s' if self.total != 1 else '')
        return f'{runs} in {(time.monotonic() - self.start) / 60:.1f} min of wall time'


def _minutes(seconds: float) -> str:
    return f'{seconds / 60:.1f} min' if seconds >= 60 else f'{seconds:.0f} s'


if __name__ == '__main__':
    sys.exit(main())
