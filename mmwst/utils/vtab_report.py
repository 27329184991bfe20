"""Collect VTAB-1k results and write them as Markdown, CSV and a bar chart.

A sweep writes one folder per task; when a task's training ends, its accuracy is read
from mmengine's ``vis_data/scalars.json`` and stored as ``result.json`` in that folder.
The report averages the 19 tasks in two ways, because the papers mix them: the plain
19-task mean, and the mean of the Natural / Specialized / Structured group means.
The final-epoch accuracy is the default; the best epoch (chosen on the test set) is
available but always labelled as optimistic.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import os.path as osp
from collections.abc import Mapping, Sequence

from ..datasets.vtab import VTAB_GROUPS, VTAB_TASKS

ACC_KEY = 'accuracy/top1'


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
    """``{'final': acc at the last validation, 'best': max acc, 'epochs': n}``."""
    records = read_scalars(task_dir)
    accs = [float(r[ACC_KEY]) for r in records]
    return dict(
        final=accs[-1], best=max(accs), validations=len(accs), last_step=records[-1].get('step')
    )


def write_task_result(task_dir: str) -> dict:
    result = task_result(task_dir)
    with open(osp.join(task_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return result


def load_results(sweep_dir: str) -> dict[str, dict]:
    """``task -> result`` for every finished task folder of a sweep."""
    results = {}
    for path in sorted(glob.glob(osp.join(sweep_dir, '*', 'result.json'))):
        with open(path) as f:
            results[osp.basename(osp.dirname(path))] = json.load(f)
    return results


def summarise(accuracies: Mapping[str, float]) -> dict[str, float]:
    """Group means, the 19-task mean and the mean of group means (NaN if incomplete)."""
    out = {}
    for group, tasks in VTAB_GROUPS.items():
        values = [accuracies[t] for t in tasks if t in accuracies]
        out[group] = sum(values) / len(values) if len(values) == len(tasks) else math.nan
    complete = all(t in accuracies for t in VTAB_TASKS)
    out['mean'] = sum(accuracies[t] for t in VTAB_TASKS) / len(VTAB_TASKS) if complete else math.nan
    out['group_mean'] = (
        sum(out[g] for g in VTAB_GROUPS) / len(VTAB_GROUPS) if complete else math.nan
    )
    return out


def _fmt(value: float | None) -> str:
    return (
        '-' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.1f}'
    )


def table_rows(
    methods: Mapping[str, Mapping[str, dict]],
    which: str = 'final',
    tasks: Sequence[str] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per method, one column per task, then the averages."""
    if which not in ('final', 'best'):
        raise ValueError(f"which must be 'final' or 'best', got {which!r}")
    if tasks is None:
        seen = {t for results in methods.values() for t in results}
        tasks = [t for t in VTAB_TASKS if t in seen] + sorted(seen - set(VTAB_TASKS))
    header = [
        'method',
        *tasks,
        'natural',
        'specialized',
        'structured',
        'mean (19)',
        'mean of groups',
    ]
    rows = []
    for method, results in methods.items():
        accs = {t: r[which] for t, r in results.items()}
        summary = summarise(accs)
        rows.append(
            [
                method,
                *(_fmt(accs.get(t)) for t in tasks),
                *(
                    _fmt(summary[k])
                    for k in ('natural', 'specialized', 'structured', 'mean', 'group_mean')
                ),
            ]
        )
    return header, rows


def write_report(
    methods: Mapping[str, Mapping[str, dict]], out_prefix: str, which: str = 'final'
) -> list[str]:
    """Write ``<out_prefix>.md``, ``.csv`` and ``.png``; return the paths."""
    header, rows = table_rows(methods, which)
    os.makedirs(osp.dirname(osp.abspath(out_prefix)), exist_ok=True)
    label = (
        'final-epoch top-1 accuracy (%)'
        if which == 'final'
        else 'BEST-epoch top-1 accuracy (%), chosen on the test set: optimistic'
    )
    md = [
        f'VTAB-1k, {label}. "-": not run (averages need all tasks).',
        '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    md += ['| ' + ' | '.join(row) + ' |' for row in rows]
    paths = [f'{out_prefix}.md', f'{out_prefix}.csv', f'{out_prefix}.png']
    with open(paths[0], 'w') as f:
        f.write('\n'.join(md) + '\n')
    with open(paths[1], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    _bar_chart(methods, which, label, paths[2])
    return paths


def _bar_chart(
    methods: Mapping[str, Mapping[str, dict]], which: str, label: str, path: str
) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks = [t for t in VTAB_TASKS if any(t in r for r in methods.values())]
    tasks += sorted({t for r in methods.values() for t in r} - set(VTAB_TASKS))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(tasks) * max(len(methods), 1)), 4.0))
    for i, (method, results) in enumerate(methods.items()):
        xs = [j + i * width for j in range(len(tasks))]
        ys = [results[t][which] if t in results else 0.0 for t in tasks]
        ax.bar(xs, ys, width=width, label=method)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(tasks))])
    ax.set_xticklabels(tasks, rotation=45, ha='right')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f'VTAB-1k: {label}')
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
