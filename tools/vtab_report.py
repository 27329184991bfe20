"""Collect VTAB-style results over methods, tasks and seeds; write tables and a chart
(the report of tools/vtab_sweep.py and tools/select_lr.py).

A sweep trains each (method, task, seed) in its own folder,
``<sweep>/<method>/<task>/seed<k>/`` (a folder without seeds, ``<method>/<task>/``,
counts as one run too). When a run ends, its accuracy is read from mmengine's
``vis_data/scalars.json`` and stored as ``result.json`` there, with its training time
and trainable-parameter counts.

The report gives, per method, each task's mean and standard deviation over seeds
(sample standard deviation, ``ddof=1``), the group means, the plain mean over the
suite's tasks and the mean of the group means - the papers mix the last two. Averages
are computed per seed and then summarised over the seeds every task has, so their
spread is the spread of the average, not of the tasks. Two suites are known: the 19
VTAB-1k tasks and mini-VTAB (:data:`mmwst.datasets.MINI_VTAB_TASKS`); other task sets
get a plain mean. The final-epoch accuracy is the default; the best epoch (chosen on
the test set) is available but always labelled as optimistic.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import os.path as osp
import re
import statistics
from collections.abc import Mapping, Sequence

from mmwst.datasets.generation.mini_vtab import MINI_VTAB_GROUPS, MINI_VTAB_TASKS
from mmwst.datasets.vtab import VTAB_GROUPS, VTAB_TASKS

ACC_KEY = 'accuracy/top1'
#: suite name -> (tasks in order, groups)
SUITES: dict[str, tuple[tuple[str, ...], Mapping[str, tuple[str, ...]]]] = {
    'vtab-1k': (tuple(VTAB_TASKS), VTAB_GROUPS),
    'mini-vtab': (tuple(MINI_VTAB_TASKS), MINI_VTAB_GROUPS),
}
GROUPS = ('natural', 'specialized', 'structured')
_SEED_DIR = re.compile(r'^seed(\d+)$')

Results = Mapping[str, Mapping[str, dict]]  # task -> seed -> result


def read_scalars(task_dir: str) -> list[dict]:
    """The validation records (those with ``accuracy/top1``) of the newest run."""
    files = sorted(glob.glob(osp.join(task_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no vis_data/scalars.json under {task_dir}; did the run validate at least once?'
        )
    records = []
    with open(files[-1]) as f:
        for line in f:
            line = line.strip()
            if line:
                entry = json.loads(line)
                if ACC_KEY in entry:
                    records.append(entry)
    if not records:
        raise ValueError(f'{files[-1]} holds no {ACC_KEY} entry')
    return records


def task_result(task_dir: str) -> dict:
    """``{'final': acc at the last validation, 'best': max acc, ...}`` of one run."""
    records = read_scalars(task_dir)
    accs = [float(r[ACC_KEY]) for r in records]
    return dict(
        final=accs[-1], best=max(accs), validations=len(accs), last_step=records[-1].get('step')
    )


def write_task_result(task_dir: str, **extra) -> dict:
    """Store :func:`task_result` plus ``extra`` (e.g. ``seconds``) and the parameter
    counts the run logged (``param_report.json``) as ``result.json``."""
    result = dict(task_result(task_dir), **extra)
    report = osp.join(task_dir, 'param_report.json')
    if osp.isfile(report):
        with open(report) as f:
            counts = json.load(f)
        result['trainable'] = counts['trainable']
        result['trainable_without_head'] = counts['trainable_without_head']
    with open(osp.join(task_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return result


def load_results(method_dir: str) -> dict[str, dict[str, dict]]:
    """``task -> seed -> result`` for every finished run of one method."""
    results: dict[str, dict[str, dict]] = {}
    for path in sorted(glob.glob(osp.join(method_dir, '*', 'result.json'))):
        with open(path) as f:
            results.setdefault(osp.basename(osp.dirname(path)), {})['-'] = json.load(f)
    for path in sorted(glob.glob(osp.join(method_dir, '*', 'seed*', 'result.json'))):
        seed_dir = osp.basename(osp.dirname(path))
        if _SEED_DIR.match(seed_dir):
            with open(path) as f:
                task = osp.basename(osp.dirname(osp.dirname(path)))
                results.setdefault(task, {})[seed_dir[4:]] = json.load(f)
    return results


def suite_of(tasks: Sequence[str]) -> str | None:
    """The suite whose tasks include all of ``tasks`` (None: no known suite); of several
    (mini-VTAB shares task names with VTAB-1k), the smallest. A caller that knows the
    suite passes it instead."""
    for name, (suite_tasks, _) in sorted(SUITES.items(), key=lambda item: len(item[1][0])):
        if tasks and set(tasks) <= set(suite_tasks):
            return name
    return None


def summarise(accuracies: Mapping[str, float], suite: str = 'vtab-1k') -> dict[str, float]:
    """Group means, the mean over the suite's tasks and the mean of group means.

    A group mean needs all of its tasks and the two overall means need every task of
    the suite; what is incomplete is NaN.
    """
    tasks, groups = SUITES[suite]
    out = {}
    for group, members in groups.items():
        values = [accuracies[t] for t in members if t in accuracies]
        out[group] = (
            sum(values) / len(values) if values and len(values) == len(members) else math.nan
        )
    complete = all(t in accuracies for t in tasks)
    out['mean'] = sum(accuracies[t] for t in tasks) / len(tasks) if complete else math.nan
    out['group_mean'] = sum(out[g] for g in groups) / len(groups) if complete else math.nan
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values or any(math.isnan(v) for v in values):  # an average some task lacks
        return math.nan, math.nan
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(results: Results, which: str, tasks: Sequence[str], suite: str | None) -> dict:
    """Per-task and averaged ``(mean, std)`` over seeds, the seeds used, params, time.

    Averages use the seeds that every task of ``tasks`` has finished.
    """
    per_task = {
        t: _mean_std([r[which] for r in results[t].values()]) for t in tasks if t in results
    }
    common = (
        set.intersection(*(set(results[t]) for t in tasks))
        if tasks and all(t in results for t in tasks)
        else set()
    )
    averages: dict[str, tuple[float, float]] = {}
    if common:
        per_seed = []
        for seed in sorted(common):
            accs = {t: results[t][seed][which] for t in tasks}
            summary = summarise(accs, suite) if suite else {}
            summary['mean'] = summary.get('mean', statistics.fmean(accs.values()))
            per_seed.append(summary)
        for key in per_seed[0]:
            averages[key] = _mean_std([s[key] for s in per_seed])
    runs = [r for seeds in results.values() for r in seeds.values()]
    params = sorted({r['trainable_without_head'] for r in runs if 'trainable_without_head' in r})
    seconds = [r['seconds'] for r in runs if 'seconds' in r]
    return dict(
        per_task=per_task,
        averages=averages,
        seeds=len(common),
        params=params[0] if len(params) == 1 else None,
        minutes=statistics.fmean(seconds) / 60 if seconds else math.nan,
    )


def _fmt(value: tuple[float, float] | float | None, std: bool = True) -> str:
    if value is None:
        return '-'
    mean, spread = value if isinstance(value, tuple) else (value, 0.0)
    if math.isnan(mean):
        return '-'
    return f'{mean:.1f} ± {spread:.1f}' if std and spread > 0 else f'{mean:.1f}'


def _task_order(
    methods: Mapping[str, Results], suite: str | None = None
) -> tuple[list[str], str | None]:
    """The tasks run, in the suite's order, and the suite (``suite``, or the one
    :func:`suite_of` finds)."""
    seen = {t for results in methods.values() for t in results}
    if suite is not None and not seen <= set(SUITES[suite][0]):
        raise ValueError(f'tasks {sorted(seen - set(SUITES[suite][0]))} are not in {suite}')
    suite = suite or suite_of(sorted(seen))
    if suite:
        return [t for t in SUITES[suite][0] if t in seen], suite
    return sorted(seen), None


def table_rows(
    methods: Mapping[str, Results],
    which: str = 'final',
    tasks: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
    suite: str | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per method, one column per task, then the averages,
    the number of seeds, the trainable parameters (without head) and minutes per run.
    ``suite`` names the suite the tasks belong to (default: found from the tasks)."""
    if which not in ('final', 'best'):
        raise ValueError(f"which must be 'final' or 'best', got {which!r}")
    order, suite = _task_order(methods, suite)
    tasks = list(tasks) if tasks is not None else order
    keys = [*GROUPS, 'mean', 'group_mean'] if suite else ['mean']
    count = len(SUITES[suite][0]) if suite else len(tasks)
    labels = {'mean': f'mean ({count})', 'group_mean': 'mean of groups'}
    header = [
        'method',
        *tasks,
        *(labels.get(k, k) for k in keys),
        'seeds',
        'params',
        'min/run',
    ]
    rows = []
    for method, results in methods.items():
        agg = aggregate(results, which, tasks, suite)
        params = agg['params']
        rows.append(
            [
                (names or {}).get(method, method),
                *(_fmt(agg['per_task'].get(t)) for t in tasks),
                *(_fmt(agg['averages'].get(k)) for k in keys),
                str(agg['seeds']),
                '-' if params is None else f'{params:,}',
                '-' if math.isnan(agg['minutes']) else f'{agg["minutes"]:.2f}',
            ]
        )
    return header, rows


def write_report(
    methods: Mapping[str, Results],
    out_prefix: str,
    which: str = 'final',
    names: Mapping[str, str] | None = None,
    suite: str | None = None,
) -> list[str]:
    """Write ``<out_prefix>.md``, ``.csv`` (means and standard deviations in separate
    columns) and ``.png``; return the paths. ``suite``: as in :func:`table_rows`."""
    header, rows = table_rows(methods, which, names=names, suite=suite)
    os.makedirs(osp.dirname(osp.abspath(out_prefix)), exist_ok=True)
    label = (
        'final-epoch top-1 accuracy (%)'
        if which == 'final'
        else 'BEST-epoch top-1 accuracy (%), chosen on the test set: optimistic'
    )
    md = [
        f'{label}; mean ± standard deviation over seeds. "-": not run (averages need every task).',
        '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    md += ['| ' + ' | '.join(row) + ' |' for row in rows]
    paths = [f'{out_prefix}.md', f'{out_prefix}.csv', f'{out_prefix}.png']
    with open(paths[0], 'w') as f:
        f.write('\n'.join(md) + '\n')
    _write_csv(methods, which, paths[1], names, suite)
    _bar_chart(methods, which, label, paths[2], names, suite)
    return paths


def _write_csv(
    methods: Mapping[str, Results],
    which: str,
    path: str,
    names: Mapping[str, str] | None,
    suite: str | None = None,
) -> None:
    tasks, suite = _task_order(methods, suite)
    keys = [*GROUPS, 'mean', 'group_mean'] if suite else ['mean']
    header = ['method']
    for col in [*tasks, *keys]:
        header += [col, f'{col}_std']
    header += ['seeds', 'trainable_without_head', 'minutes_per_run']
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for method, results in methods.items():
            agg = aggregate(results, which, tasks, suite)
            row = [(names or {}).get(method, method)]
            cells = [agg['per_task'].get(t) for t in tasks]
            cells += [agg['averages'].get(k) for k in keys]
            for cell in cells:
                row += ['', ''] if cell is None else [f'{cell[0]:.2f}', f'{cell[1]:.2f}']
            row += [agg['seeds'], agg['params'] or '', f'{agg["minutes"]:.3f}']
            writer.writerow(row)


def _bar_chart(
    methods: Mapping[str, Results],
    which: str,
    label: str,
    path: str,
    names: Mapping[str, str] | None,
    suite: str | None = None,
) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks, suite = _task_order(methods, suite)
    columns = tasks + (['mean'] if len(tasks) > 1 else [])
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.35 * len(columns) * max(len(methods), 1)), 4.5))
    cmap = plt.get_cmap('tab20')
    for i, (method, results) in enumerate(methods.items()):
        agg = aggregate(results, which, tasks, suite)
        stats = [agg['per_task'].get(t, (0.0, 0.0)) for t in tasks]
        if len(tasks) > 1:
            stats.append(agg['averages'].get('mean', (0.0, 0.0)))
        xs = [j + i * width for j in range(len(columns))]
        ys = [0.0 if math.isnan(m) else m for m, _ in stats]
        errs = [0.0 if math.isnan(s) else s for _, s in stats]
        ax.bar(
            xs,
            ys,
            width=width,
            yerr=errs,
            capsize=1.5,
            error_kw=dict(lw=0.6),
            color=cmap(i % 20),
            label=(names or {}).get(method, method),
        )
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(columns))])
    ax.set_xticklabels(columns, rotation=30, ha='right')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f'{suite or "tasks"}: {label}', fontsize='medium')
    ax.legend(
        fontsize='x-small',
        ncol=2 if len(methods) > 8 else 1,
        loc='upper left',
        bbox_to_anchor=(1.0, 1.0),
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """``python tools/vtab_report.py task-result RUN_DIR [--seconds S]``: store a finished
    run's ``result.json`` (what a Slurm run of tools/vtab_sweep.py does when it ends)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description='Store the result of a finished sweep run.')
    commands = parser.add_subparsers(dest='command', required=True)
    task = commands.add_parser('task-result', help='write RUN_DIR/result.json from its logs')
    task.add_argument('run_dir')
    task.add_argument('--seconds', type=float, help='the training time to record')
    args = parser.parse_args(argv)
    extra = {} if args.seconds is None else dict(seconds=args.seconds)
    try:
        result = write_task_result(args.run_dir, **extra)
    except (OSError, ValueError) as err:
        print(f'[sweep] no result for {args.run_dir}: {err}', file=sys.stderr)
        return 1
    print(
        f'[sweep] final {result["final"]:.2f}%, best {result["best"]:.2f}% '
        f'({osp.join(args.run_dir, "result.json")})'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
