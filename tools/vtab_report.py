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

Each mean comes with its 95% confidence interval over the seeds (Student's t, ``n - 1``
degrees of freedom: half-width ``t * std / sqrt(n)``); the CSV keeps the standard
deviation as well. A run without seeds (a deterministic method such as the
logistic-regression probe) is one run that stands for every seed: no interval.

Against named baselines (``baselines``), every row gets a paired comparison: the
difference of the mean over the tasks, paired by seed (its mean and 95% interval over
the seeds), and a Wilcoxon signed-rank test over the differences paired by task and
seed (35 pairs for 7 tasks and 5 seeds; zero differences dropped; two-sided), with the
p-values Holm-adjusted over the rows compared with the same baseline. A row is marked
better or worse than a baseline only where the adjusted p is below 0.05.

The board can be rebuilt from its runs alone: ``runs`` writes every run of a sweep
(method, task, seed, accuracy, time, parameters) to one CSV, and ``board`` writes the
tables and the chart from such a CSV::

    python tools/vtab_report.py runs SWEEP_DIR --out runs.csv [--extra NAME ...]
    python tools/vtab_report.py board runs.csv --out PREFIX [--baselines NAME ...]

``restore`` writes a runs CSV back into a sweep's folders (one ``result.json`` per run,
none overwritten), so that a sweep continued on another machine, or after its work dir
was lost, trains only the runs the file does not hold::

    python tools/vtab_report.py restore runs.csv SWEEP_DIR
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
from typing import NamedTuple

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


class Stat(NamedTuple):
    """A mean over seeds, its sample standard deviation and its 95% confidence
    half-width (both 0 for a single run)."""

    mean: float
    std: float
    ci95: float


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided Student's t quantile for ``df`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def _stat(values: Sequence[float]) -> Stat:
    if not values or any(math.isnan(v) for v in values):  # an average some task lacks
        return Stat(math.nan, math.nan, math.nan)
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Stat(mean, 0.0, 0.0)
    std = statistics.stdev(values)
    return Stat(mean, std, t_quantile(len(values) - 1) * std / math.sqrt(len(values)))


def _common_seeds(results: Results, tasks: Sequence[str]) -> set[str]:
    if not tasks or not all(t in results for t in tasks):
        return set()
    return set.intersection(*(set(results[t]) for t in tasks))


def aggregate(results: Results, which: str, tasks: Sequence[str], suite: str | None) -> dict:
    """Per-task and averaged :class:`Stat` over seeds, the seeds used, params, time.

    Averages use the seeds that every task of ``tasks`` has finished.
    """
    per_task = {t: _stat([r[which] for r in results[t].values()]) for t in tasks if t in results}
    common = _common_seeds(results, tasks)
    averages: dict[str, Stat] = {}
    if common:
        per_seed = []
        for seed in sorted(common):
            accs = {t: results[t][seed][which] for t in tasks}
            summary = summarise(accs, suite) if suite else {}
            summary['mean'] = summary.get('mean', statistics.fmean(accs.values()))
            per_seed.append(summary)
        for key in per_seed[0]:
            averages[key] = _stat([s[key] for s in per_seed])
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


def _fmt(value: Stat | None, spread: str = 'ci95') -> str:
    if value is None or math.isnan(value.mean):
        return '-'
    width = getattr(value, spread)
    return f'{value.mean:.1f} ± {width:.1f}' if width > 0 else f'{value.mean:.1f}'


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


class Comparison(NamedTuple):
    """One method against a baseline, paired by task and seed."""

    delta: float  # mean over seeds of the per-seed difference of the mean over tasks
    ci95: float  # its 95% half-width over the seeds (0 for one seed)
    p: float  # Wilcoxon signed-rank over the (task, seed) differences, two-sided
    pairs: int  # (task, seed) pairs
    seeds: int


def compare(
    results: Results, base: Results, tasks: Sequence[str], which: str = 'final'
) -> Comparison | None:
    """``results`` minus ``base``, paired by seed and task; None without a common seed.

    A method run once without seeds (deterministic) pairs its one run with every seed of
    the other."""
    seeds, base_seeds = _common_seeds(results, tasks), _common_seeds(base, tasks)
    if seeds == {'-'}:
        pairs = [('-', s) for s in sorted(base_seeds)]
    elif base_seeds == {'-'}:
        pairs = [(s, '-') for s in sorted(seeds)]
    else:
        pairs = [(s, s) for s in sorted(seeds & base_seeds)]
    if not pairs:
        return None
    diffs = [[results[t][a][which] - base[t][b][which] for t in tasks] for a, b in pairs]
    per_seed = _stat([statistics.fmean(d) for d in diffs])
    flat = [d for row in diffs for d in row]
    return Comparison(per_seed.mean, per_seed.ci95, wilcoxon_p(flat), len(flat), len(pairs))


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value (zero differences dropped; 1.0 when none
    is left)."""
    from scipy import stats

    if not any(abs(d) > 1e-9 for d in differences):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method='wilcox').pvalue)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of a family of p-values (keys kept)."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[key]))
        adjusted[key] = running
    return adjusted


def comparisons(
    methods: Mapping[str, Results],
    baselines: Sequence[str],
    which: str = 'final',
    suite: str | None = None,
) -> dict[str, dict[str, tuple[Comparison, float]]]:
    """``baseline -> method -> (comparison, Holm-adjusted p)`` for every other method."""
    tasks, _ = _task_order(methods, suite)
    out = {}
    for base in baselines:
        if base not in methods:
            raise ValueError(f'baseline {base!r} is not a method of the board: {list(methods)}')
        found = {
            m: c
            for m, results in methods.items()
            if m != base and (c := compare(results, methods[base], tasks, which)) is not None
        }
        adjusted = holm({m: c.p for m, c in found.items()})
        out[base] = {m: (c, adjusted[m]) for m, c in found.items()}
    return out


ALPHA = 0.05


def mark(comparison: tuple[Comparison, float] | None) -> str:
    """``▲`` better, ``▼`` worse (Holm-adjusted p < 0.05), ``=`` no significant
    difference, ``-`` the baseline itself or not comparable."""
    if comparison is None:
        return '-'
    c, p = comparison
    if p >= ALPHA:
        return '='
    return '▲' if c.delta > 0 else '▼'


def table_rows(
    methods: Mapping[str, Results],
    which: str = 'final',
    tasks: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
    suite: str | None = None,
    spread: str = 'ci95',
    baselines: Sequence[str] = (),
    against: Mapping | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per method, one column per task, then the averages,
    the number of seeds, the trainable parameters (without head), minutes per run and,
    per baseline, the row's mark against it (:func:`mark`). ``suite`` names the suite
    the tasks belong to (default: found from the tasks); ``spread``: what follows
    ``±``, ``'ci95'`` (the 95% half-width) or ``'std'``; ``against``: the
    :func:`comparisons` with ``baselines``, when the caller has them already."""
    if which not in ('final', 'best'):
        raise ValueError(f"which must be 'final' or 'best', got {which!r}")
    if spread not in ('ci95', 'std'):
        raise ValueError(f"spread must be 'ci95' or 'std', got {spread!r}")
    order, suite = _task_order(methods, suite)
    tasks = list(tasks) if tasks is not None else order
    keys = [*GROUPS, 'mean', 'group_mean'] if suite else ['mean']
    count = len(SUITES[suite][0]) if suite else len(tasks)
    labels = {'mean': f'mean ({count})', 'group_mean': 'mean of groups'}
    names = names or {}
    if against is None:
        against = comparisons(methods, baselines, which, suite)
    header = [
        'method',
        *tasks,
        *(labels.get(k, k) for k in keys),
        'seeds',
        'params',
        'min/run',
        *(f'vs {names.get(b, b)}' for b in baselines),
    ]
    rows = []
    for method, results in methods.items():
        agg = aggregate(results, which, tasks, suite)
        params = agg['params']
        rows.append(
            [
                names.get(method, method),
                *(_fmt(agg['per_task'].get(t), spread) for t in tasks),
                *(_fmt(agg['averages'].get(k), spread) for k in keys),
                str(agg['seeds']),
                '-' if params is None else f'{params:,}',
                '-' if math.isnan(agg['minutes']) else f'{agg["minutes"]:.2f}',
                *(mark(against[b].get(method)) for b in baselines),
            ]
        )
    return header, rows


def comparison_rows(
    methods: Mapping[str, Results],
    baselines: Sequence[str],
    which: str = 'final',
    names: Mapping[str, str] | None = None,
    suite: str | None = None,
    against: Mapping | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Per method and baseline: the difference of the mean over tasks with its 95%
    interval, and the Holm-adjusted p-value (``against``: as in :func:`table_rows`)."""
    names = names or {}
    if against is None:
        against = comparisons(methods, baselines, which, suite)
    header = ['method']
    for base in baselines:
        header += [f'Δ vs {names.get(base, base)} [95% CI]', f'p vs {names.get(base, base)}']
    rows = []
    for method in methods:
        row = [names.get(method, method)]
        for base in baselines:
            found = against[base].get(method)
            if found is None:
                row += ['-', '-']
                continue
            c, p = found
            row += [f'{c.delta:+.1f} [{c.delta - c.ci95:+.1f}, {c.delta + c.ci95:+.1f}]', _p(p)]
        rows.append(row)
    return header, rows


def _p(p: float) -> str:
    return '< 0.001' if p < 0.001 else f'{p:.3f}'


def write_report(
    methods: Mapping[str, Results],
    out_prefix: str,
    which: str = 'final',
    names: Mapping[str, str] | None = None,
    suite: str | None = None,
    baselines: Sequence[str] = (),
) -> list[str]:
    """Write ``<out_prefix>.md``, ``.csv`` (means, standard deviations and 95%
    half-widths in separate columns) and ``.png``; return the paths. ``suite``: as in
    :func:`table_rows`; ``baselines``: methods every row is compared with."""
    against = comparisons(methods, baselines, which, suite)  # once, for every table
    header, rows = table_rows(
        methods, which, names=names, suite=suite, baselines=baselines, against=against
    )
    os.makedirs(osp.dirname(osp.abspath(out_prefix)), exist_ok=True)
    label = (
        'final-epoch top-1 accuracy (%)'
        if which == 'final'
        else 'BEST-epoch top-1 accuracy (%), chosen on the test set: optimistic'
    )
    md = [
        f'{label}; mean ± the half-width of its 95% confidence interval over seeds (no '
        'interval: one run). "-": not run (averages need every task).',
        '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    md += ['| ' + ' | '.join(row) + ' |' for row in rows]
    if baselines:
        c_header, c_rows = comparison_rows(methods, baselines, which, names, suite, against)
        md += [
            '',
            '"vs" columns: ▲ better, ▼ worse than the baseline, = no significant difference '
            '(Wilcoxon signed-rank over the runs paired by task and seed, two-sided, '
            'Holm-adjusted over the rows, p < 0.05). Differences of the mean over the '
            'tasks, paired by seed, with their 95% confidence interval over the seeds:',
            '',
            '| ' + ' | '.join(c_header) + ' |',
            '|' + '---|' * len(c_header),
        ]
        md += ['| ' + ' | '.join(row) + ' |' for row in c_rows]
    paths = [f'{out_prefix}.md', f'{out_prefix}.csv', f'{out_prefix}.png']
    with open(paths[0], 'w') as f:
        f.write('\n'.join(md) + '\n')
    _write_csv(methods, which, paths[1], names, suite, baselines, against)
    _bar_chart(methods, which, label, paths[2], names, suite)
    return paths


def _write_csv(
    methods: Mapping[str, Results],
    which: str,
    path: str,
    names: Mapping[str, str] | None,
    suite: str | None = None,
    baselines: Sequence[str] = (),
    against: Mapping | None = None,
) -> None:
    tasks, suite = _task_order(methods, suite)
    keys = [*GROUPS, 'mean', 'group_mean'] if suite else ['mean']
    if against is None:
        against = comparisons(methods, baselines, which, suite)
    header = ['method']
    for col in [*tasks, *keys]:
        header += [col, f'{col}_std', f'{col}_ci95']
    header += ['seeds', 'trainable_without_head', 'minutes_per_run']
    for base in baselines:
        header += [f'vs_{base}_delta', f'vs_{base}_ci95', f'vs_{base}_p_holm', f'vs_{base}']
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for method, results in methods.items():
            agg = aggregate(results, which, tasks, suite)
            row = [(names or {}).get(method, method)]
            cells = [agg['per_task'].get(t) for t in tasks]
            cells += [agg['averages'].get(k) for k in keys]
            for cell in cells:
                row += ['', '', ''] if cell is None else [f'{v:.2f}' for v in cell]
            row += [agg['seeds'], agg['params'] or '', f'{agg["minutes"]:.3f}']
            for base in baselines:
                found = against[base].get(method)
                if found is None:
                    row += ['', '', '', '-']
                else:
                    c, p = found
                    row += [f'{c.delta:.2f}', f'{c.ci95:.2f}', f'{p:.4f}', mark(found)]
            writer.writerow(row)


RUN_COLUMNS = (
    'method',
    'label',
    'task',
    'seed',
    'final',
    'best',
    'seconds',
    'trainable_without_head',
)


def write_runs(
    methods: Mapping[str, Results], path: str, names: Mapping[str, str] | None = None
) -> int:
    """Every run as one CSV row (:data:`RUN_COLUMNS`; seed ``-``: a run without seeds),
    methods in the given order; returns the number of runs."""
    count = 0
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(RUN_COLUMNS)
        for method, results in methods.items():
            for task in sorted(results):
                for seed in sorted(results[task], key=lambda s: (s != '-', s.zfill(6))):
                    r = results[task][seed]
                    writer.writerow(
                        [
                            method,
                            (names or {}).get(method, method),
                            task,
                            seed,
                            repr(float(r['final'])),
                            repr(float(r.get('best', r['final']))),
                            r.get('seconds', ''),
                            r.get('trainable_without_head', ''),
                        ]
                    )
                    count += 1
    return count


def read_runs(path: str) -> tuple[dict[str, dict[str, dict[str, dict]]], dict[str, str]]:
    """The methods (in the file's order, ``method -> task -> seed -> result``) and
    their row labels, from a :func:`write_runs` file."""
    methods: dict[str, dict[str, dict[str, dict]]] = {}
    names: dict[str, str] = {}
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = set(RUN_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f'{path} is not a runs file: no column {sorted(missing)}')
        for row in reader:
            result = dict(final=float(row['final']), best=float(row['best']))
            if row['seconds']:
                result['seconds'] = float(row['seconds'])
            if row['trainable_without_head']:
                result['trainable_without_head'] = int(row['trainable_without_head'])
            tasks = methods.setdefault(row['method'], {})
            if row['seed'] in tasks.setdefault(row['task'], {}):
                raise ValueError(
                    f'{path}: {row["method"]} / {row["task"]} / seed {row["seed"]} twice'
                )
            tasks[row['task']][row['seed']] = result
            names[row['method']] = row['label']
    return methods, names


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
    # one panel per task (and the mean), the methods as horizontal bars in the same order
    # in every panel: the figure grows with the methods downwards, not sideways
    per_row = max(1, min(4, len(columns)))  # one empty panel when no run has finished
    rows = max(1, math.ceil(len(columns) / per_row))
    count = max(len(methods), 1)
    fig, axes = plt.subplots(
        rows,
        per_row,
        sharey=True,
        squeeze=False,
        figsize=(2.6 * per_row + 2.4, rows * (0.8 + 0.17 * count)),
    )
    cmap = plt.get_cmap('tab20')
    labels = [(names or {}).get(method, method) for method in methods]
    stats = {}
    for method, results in methods.items():
        agg = aggregate(results, which, tasks, suite)
        empty = Stat(0.0, 0.0, 0.0)
        stats[method] = {t: agg['per_task'].get(t, empty) for t in tasks}
        stats[method]['mean'] = agg['averages'].get('mean', empty)
    for index, ax in enumerate(axes.flat):
        if index >= len(columns):
            ax.set_visible(False)
            continue
        column = columns[index]
        values = [stats[m][column] for m in methods]
        ax.barh(
            range(len(values)),
            [0.0 if math.isnan(s.mean) else s.mean for s in values],
            xerr=[0.0 if math.isnan(s.ci95) else s.ci95 for s in values],  # 95% intervals
            capsize=1.5,
            error_kw=dict(lw=0.6),
            color=[cmap(i % 20) for i in range(len(values))],
            height=0.75,
        )
        ax.set_title(column, fontsize='small')
        ax.set_xlim(0, 100)
        ax.tick_params(labelsize='x-small')
        ax.grid(axis='x', lw=0.3, alpha=0.5)
        if index % per_row == 0:
            ax.set_yticks(range(len(labels)))
            ax.set_yticklabels(labels)
    axes[0][0].invert_yaxis()  # the first method on top (the axes share it)
    fig.supxlabel(
        'top-1 accuracy (%); bars: mean over seeds, whiskers: 95% interval', fontsize='small'
    )
    fig.suptitle(f'{suite or "tasks"}: {label}', fontsize='medium')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def restore_runs(path: str, sweep_dir: str) -> tuple[int, int]:
    """Write every run of a :func:`write_runs` file as ``result.json`` in the sweep's
    layout under ``sweep_dir``; runs that have one already are left alone. Returns
    ``(written, kept)``."""
    methods, names = read_runs(path)
    written = kept = 0
    for method, results in methods.items():
        for task, seeds in results.items():
            for seed, result in seeds.items():
                run_dir = osp.join(
                    sweep_dir, method, task, *([] if seed == '-' else [f'seed{seed}'])
                )
                target = osp.join(run_dir, 'result.json')
                if osp.isfile(target):
                    kept += 1
                    continue
                os.makedirs(run_dir, exist_ok=True)
                record = dict(result, restored_from=osp.abspath(path))
                if seed == '-':
                    record['label'] = names[method]
                with open(target, 'w') as f:
                    json.dump(record, f, indent=2)
                written += 1
    return written, kept


def sweep_methods(sweep_dir: str, extra: Sequence[str] = ()) -> tuple[dict, dict[str, str]]:
    """The methods of a tools/vtab_sweep.py work dir, in the sweep's order after the
    ``extra`` folders (results of another tool in the same layout, e.g. the
    logistic-regression probe), and their row labels (a config's ``board_name``, an
    extra run's ``label``)."""
    args_file = osp.join(sweep_dir, 'sweep_args.json')
    if not osp.isfile(args_file):
        raise FileNotFoundError(f'{sweep_dir} holds no sweep_args.json: not a sweep work dir')
    with open(args_file) as f:
        configs = json.load(f)['methods']
    methods, names = {}, {}
    for name in extra:
        results = load_results(osp.join(sweep_dir, name))
        if not results:
            raise FileNotFoundError(f'no result.json under {osp.join(sweep_dir, name)}')
        methods[name] = results
        labels = {r.get('label') for seeds in results.values() for r in seeds.values()}
        names[name] = labels.pop() if len(labels) == 1 and None not in labels else name
    from mmengine.config import Config

    for name, config in configs.items():
        methods[name] = load_results(osp.join(sweep_dir, name))
        label = Config.fromfile(config).get('board_name') if osp.isfile(config) else None
        names[name] = str(label) if label else name
    return methods, names


def main(argv=None) -> int:
    """``task-result RUN_DIR [--seconds S]``: store a finished run's ``result.json``
    (what a Slurm run of tools/vtab_sweep.py does when it ends); ``runs`` and ``board``:
    see the module's docstring."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description='Store, collect and report sweep results.')
    commands = parser.add_subparsers(dest='command', required=True)
    task = commands.add_parser('task-result', help='write RUN_DIR/result.json from its logs')
    task.add_argument('run_dir')
    task.add_argument('--seconds', type=float, help='the training time to record')
    runs = commands.add_parser('runs', help="write every run of a sweep's work dir to a CSV")
    runs.add_argument('sweep_dir')
    runs.add_argument('--out', required=True, help='the CSV to write')
    runs.add_argument(
        '--extra',
        nargs='+',
        default=[],
        help='other method folders of the work dir to list first (e.g. a probe)',
    )
    restore = commands.add_parser('restore', help="write a runs CSV back into a sweep's folders")
    restore.add_argument('runs_csv')
    restore.add_argument('sweep_dir')
    board = commands.add_parser('board', help='tables and chart from a runs CSV')
    board.add_argument('runs_csv')
    board.add_argument('--out', required=True, help='prefix of the .md, .csv and .png')
    board.add_argument('--suite', choices=sorted(SUITES), help='default: found from the tasks')
    board.add_argument(
        '--baselines', nargs='+', default=[], help='methods (runs CSV names) to compare with'
    )
    board.add_argument('--best-epoch', action='store_true', help='optimistic: see the docstring')
    args = parser.parse_args(argv)
    if args.command == 'runs':
        try:
            methods, names = sweep_methods(args.sweep_dir, args.extra)
        except (OSError, ValueError) as err:
            parser.error(str(err))
        count = write_runs(methods, args.out, names)
        print(f'[report] {count} runs of {len(methods)} methods -> {args.out}')
        return 0
    if args.command == 'restore':
        try:
            written, kept = restore_runs(args.runs_csv, args.sweep_dir)
        except (OSError, ValueError) as err:
            parser.error(str(err))
        print(f'[report] {written} runs restored into {args.sweep_dir}, {kept} there already')
        return 0
    if args.command == 'board':
        try:
            methods, names = read_runs(args.runs_csv)
            paths = write_report(
                methods,
                args.out,
                'best' if args.best_epoch else 'final',
                names=names,
                suite=args.suite,
                baselines=args.baselines,
            )
        except (OSError, ValueError) as err:
            parser.error(str(err))
        print('[report] ' + ', '.join(paths))
        return 0
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
