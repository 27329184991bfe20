"""Pick each method's learning rate from validation sweeps (never from the test split).

    python tools/select_lr.py SWEEP_DIR [SWEEP_DIR ...] [--out recipe.md]

Each SWEEP_DIR is a ``tools/vtab_sweep.py --protocol val`` run (train800 -> val200) at
one learning rate, given as ``--cfg-options optim_wrapper.optimizer.lr=X`` (read back
from its ``sweep_args.json``). For every method, the learning rate with the best mean
validation accuracy over the swept tasks wins (ties: the smaller rate). Prints, and
optionally writes as Markdown, one row per method: the mean validation accuracy at each
rate and the winner.
"""

import argparse
import json
import os.path as osp
import statistics
import sys

LR_KEY = 'optim_wrapper.optimizer.lr'


def sweep_lr(sweep_dir: str) -> tuple[float, dict]:
    with open(osp.join(sweep_dir, 'sweep_args.json')) as f:
        args = json.load(f)
    if args.get('protocol') != 'val':
        raise ValueError(f'{sweep_dir} was not a --protocol val sweep: refusing to select on it')
    options = dict(o.split('=', 1) for o in args.get('cfg_options', []))
    if LR_KEY not in options:
        raise ValueError(f'{sweep_dir} sets no {LR_KEY} in --cfg-options')
    return float(options[LR_KEY]), args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sweeps', nargs='+')
    parser.add_argument('--out', help='write the table as Markdown here')
    args = parser.parse_args(argv)

    from vtab_report import load_results

    table: dict[str, dict[float, float]] = {}
    for sweep in args.sweeps:
        lr, sweep_args = sweep_lr(sweep)
        for method in sweep_args['methods']:
            results = load_results(osp.join(sweep, method))
            accs = [
                r['final'] for task in sweep_args['tasks'] for r in results.get(task, {}).values()
            ]
            if len(accs) == len(sweep_args['tasks']) * len(sweep_args['seeds']):
                table.setdefault(method, {})[lr] = statistics.fmean(accs)
    rates = sorted({lr for row in table.values() for lr in row})
    lines = [
        '| method | ' + ' | '.join(f'lr {lr:g}' for lr in rates) + ' | chosen |',
        '|---|' + '---|' * (len(rates) + 1),
    ]
    for method, row in table.items():
        best = max(sorted(row), key=lambda lr: row[lr])
        cells = [f'{row[lr]:.1f}' if lr in row else '-' for lr in rates]
        lines.append(f'| {method} | ' + ' | '.join(cells) + f' | {best:g} |')
    text = '\n'.join(lines)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
