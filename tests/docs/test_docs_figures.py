"""The results the docs quote equal the raw files they come from.

Raw files: the mini-VTAB board (``docs/mini_vtab/vtab_results.csv``), the dense
backbone's two mini-VTAB tasks (``docs/dense_modes/mini_vtab_results.csv``) and the
shapes demo's runs of the dense variants (``docs/dense_modes/demo_summaries.json``).

The board's CSV and tables are themselves rebuilt here from every run of the board
(``docs/mini_vtab/vtab_runs.csv``) by ``tools/vtab_report.py board``, so a figure cannot
drift from the runs it summarises.

The rounding rule: a figure is quoted with fewer decimals than the raw file or as many;
accuracies, means and standard deviations with one decimal (the board's tables), minutes
per run with two, mAP with three. The CSV files hold two decimals and were written from
the unrounded results, as were the board's tables, so where the CSV's dropped digit is a
5 (1.25) either neighbour (1.2 or 1.3) is the correct rounding; otherwise only one is.
"""

from __future__ import annotations

import csv
import json
import re
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOARD_CSV = 'docs/mini_vtab/vtab_results.csv'
BOARD_RUNS = 'docs/mini_vtab/vtab_runs.csv'
#: the board's baselines: every row is compared with them (the runs file's method names)
BOARD_BASELINES = {'lora/vit-t_mini-vtab': 'LoRA (r=8, q,v)', 'full_finetune': 'full fine-tuning'}
DENSE_CSV = 'docs/dense_modes/mini_vtab_results.csv'
DEMO_JSON = 'docs/dense_modes/demo_summaries.json'

#: board column -> CSV column (the tasks and groups keep their names)
BOARD_COLUMNS = {
    'mean (7)': 'mean',
    'mean of groups': 'group_mean',
    'seeds': 'seeds',
    'params': 'trainable_without_head',
    'min/run': 'minutes_per_run',
    **{f'vs {label}': f'vs_{base}' for base, label in BOARD_BASELINES.items()},
}
#: what follows "±" in each raw file's tables: the board's 95% intervals, the dense
#: variants' standard deviations
SPREAD = {BOARD_CSV: '_ci95'}


def read(path: str) -> str:
    return (REPO / path).read_text()


def flat(path: str) -> str:
    """The file's text with every run of white space as one space (prose wraps)."""
    return ' '.join(read(path).split())


#: how a figure is read where a sentence's ``{}`` stands: digits with thousands commas and
#: decimals; SIGNED also with its sign; DECIMAL any run of digits and points
NUMBER = r'(\d[\d,]*(?:\.\d+)?)'
SIGNED = r'([+-]?\d[\d,]*(?:\.\d+)?)'
DECIMAL = r'([\d.]+)'


def figures_in(sentence: str, text: str, figure: str = NUMBER) -> tuple[str, ...] | None:
    """The figures ``text`` (a :func:`flat` file) has where ``sentence`` has ``{}``, or
    None when the text no longer says the sentence."""
    found = re.search(figure.join(map(re.escape, sentence.split('{}'))), text)
    return found.groups() if found else None


def board(path: str = BOARD_CSV) -> dict[str, dict[str, str]]:
    with open(REPO / path, newline='') as f:
        return {row['method']: row for row in csv.DictReader(f)}


def agrees(quoted: str, raw: str) -> bool:
    """``quoted`` is ``raw`` at the quoted number of decimals (see the module's rule)."""
    quoted, raw = quoted.replace(',', ''), raw.replace(',', '')
    q, r = Decimal(quoted), Decimal(raw)
    places = -q.as_tuple().exponent
    if places >= -r.as_tuple().exponent:
        return q == r
    step = Decimal(1).scaleb(-places)
    return q in {r.quantize(step, ROUND_HALF_UP), r.quantize(step, ROUND_HALF_DOWN)}


def per_seed_disagreements(cell: str, runs: list[dict], key: str, what: str) -> list[str]:
    """A cell quoting one figure per run (``a / b / c``, bold allowed) against the runs'
    ``key``, in order: one message per figure that disagrees (a count that differs fails
    the strict zip)."""
    quoted = [q.strip() for q in cell.replace('*', '').split('/')]
    return [
        f'{what} seed {run["seed"]}: {key} {q}, CSV {run[key]}'
        for q, run in zip(quoted, runs, strict=True)
        if not agrees(q, run[key])
    ]


def tables(path: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of a file: (header, rows), cells stripped."""
    # a table may sit indented in a list item
    found, lines = [], [line.lstrip() for line in read(path).splitlines()]
    i = 0
    while i < len(lines):
        if lines[i].startswith('|') and i + 1 < len(lines) and lines[i + 1].startswith('|---'):
            header = [c.strip() for c in lines[i].strip('|').split('|')]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith('|'):
                rows.append([c.strip() for c in lines[i].strip('|').split('|')])
                i += 1
            found.append((header, rows))
        else:
            i += 1
    return found


def table_with(path: str, *columns: str) -> tuple[list[str], list[list[str]]]:
    matching = [t for t in tables(path) if all(c in t[0] for c in columns)]
    assert len(matching) == 1, f'{path}: {len(matching)} tables with columns {columns}'
    return matching[0]


def check_cell(
    where: str, cell: str, row: dict[str, str], key: str, spread: str = '_std'
) -> list[str]:
    """A board cell (``mean ± spread``, ``-``, a plain figure or a mark) against the
    CSV's row; ``spread``: the suffix of the column ``±`` quotes."""
    cell = cell.replace('*', '')
    if key.startswith('vs_'):  # a mark: the CSV holds the same symbol
        return [] if cell == row[key] else [f'{where}: {cell} but the CSV has {row[key]}']
    if cell == '-':
        return [] if row[key] == '' else [f'{where}: "-" but the CSV has {row[key]}']
    parts = [p.strip() for p in cell.split('±')]
    raws = [row[key] or '0'] + ([row[f'{key}{spread}']] if len(parts) == 2 else [])
    return [
        f'{where}: {quoted} but the CSV has {raw}'
        for quoted, raw in zip(parts, raws)
        if not agrees(quoted, raw)
    ]


BOARD_TABLES = [
    ('docs/mini_vtab.md', BOARD_CSV),
    ('docs/mini_vtab/vtab_results.md', BOARD_CSV),
    ('docs/dense_modes/mini_vtab_results.md', DENSE_CSV),
]


@pytest.mark.parametrize('doc, raw', BOARD_TABLES)
def test_board_tables_equal_the_csv(doc, raw):
    """Every row of the board, every cell: the method, its figures at one decimal (± the
    standard deviation), seeds, trainable parameters and minutes per run."""
    results = board(raw)
    header, rows = table_with(doc, 'method', 'seeds', 'min/run')
    assert {r[0] for r in rows} == set(results), f'{doc}: rows differ from {raw}'
    wrong = []
    for cells in rows:
        row = results[cells[0]]
        for column, cell in zip(header[1:], cells[1:]):
            key = BOARD_COLUMNS.get(column, column)
            assert key in row, f'{doc}: column {column!r} is not in {raw}'
            wrong += check_cell(
                f'{doc}, {cells[0]}, {column}', cell, row, key, SPREAD.get(raw, '_std')
            )
    assert not wrong, '\n'.join(wrong)


def test_board_is_rebuilt_from_its_runs(tmp_path):
    """The board's CSV and Markdown are what ``tools/vtab_report.py board`` writes from
    the committed runs, to the byte (the command in docs/mini_vtab.md)."""
    from tools.vtab_report import read_runs, write_report

    methods, names = read_runs(str(REPO / BOARD_RUNS))
    md, table, _ = write_report(
        methods, str(tmp_path / 'board'), names=names, baselines=list(BOARD_BASELINES)
    )
    assert open(table).read() == read(BOARD_CSV)
    assert open(md).read() == read('docs/mini_vtab/vtab_results.md')
    command = (
        f'python tools/vtab_report.py board {BOARD_RUNS} --out docs/mini_vtab/vtab_results '
        f'--baselines {" ".join(BOARD_BASELINES)}'
    )
    assert command in flat('docs/mini_vtab.md')
    # five seeds of every trained row; the deterministic probe once per task
    for method, results in methods.items():
        seeds = {seed for runs in results.values() for seed in runs}
        assert seeds == ({'-'} if method == 'logreg_probe' else set('01234')), method
        assert len(results) == 7, method


@pytest.mark.parametrize('doc', ['docs/mini_vtab.md', 'docs/mini_vtab/vtab_results.md'])
def test_board_comparisons_equal_the_csv(doc):
    """The comparison table: each row's difference with its interval and its adjusted
    p-value against each baseline."""
    results = board()
    header, rows = table_with(doc, 'method', f'p vs {next(iter(BOARD_BASELINES.values()))}')
    assert {r[0] for r in rows} == set(results)
    wrong = []
    for cells in rows:
        row = results[cells[0]]
        for base, label in BOARD_BASELINES.items():
            delta = cells[header.index(f'Δ vs {label} [95% CI]')]
            p = cells[header.index(f'p vs {label}')]
            if row[f'vs_{base}'] == '-':
                wrong += [] if delta == p == '-' else [f'{doc}, {cells[0]}: {delta} {p}']
                continue
            mean, low, high = re.findall(r'[+-]\d+\.\d', delta)
            ci = float(row[f'vs_{base}_ci95'])
            figures = [(mean, row[f'vs_{base}_delta'])]
            figures += [(low, f'{float(row[f"vs_{base}_delta"]) - ci:.4f}')]
            figures += [(high, f'{float(row[f"vs_{base}_delta"]) + ci:.4f}')]
            for quoted, raw in figures:
                if abs(float(quoted) - float(raw)) > 0.051:
                    wrong.append(f'{doc}, {cells[0]} vs {label}: {quoted}, the CSV: {raw}')
            raw_p = float(row[f'vs_{base}_p_holm'])
            if p == '< 0.001' and raw_p >= 0.001 or p != '< 0.001' and not agrees(p, str(raw_p)):
                wrong.append(f'{doc}, {cells[0]} vs {label}: p {p}, the CSV: {raw_p}')
    assert not wrong, '\n'.join(wrong)


#: README's method table: its label -> the board's row(s) ("/": two rows in one cell);
#: a method not on the board is not listed and its README cell must be "-"
README_ROWS = {
    'linear probe': ['linear probe (logistic regression)'],
    'full fine-tuning': ['full fine-tuning'],
    'BitFit': ['BitFit'],
    'LN-tune': ['LN-tune'],
    'SSF': ['SSF'],
    'LoRA (r=8, q,v)': ['LoRA (r=8, q,v)'],
    'Adapter (r=8)': ['Adapter (r=8)'],
    'AdaptFormer (r=64)': ['AdaptFormer (r=16)'],
    'VPT-shallow / deep (10)': ['VPT-shallow (10)', 'VPT-deep (10)'],
    'WST': ['WST'],
    'HST': ['HST'],
    'FreqFit (complex / real; 1-D)': ['FreqFit + LoRA (r=8, q,v)'],
    'RLRR': ['RLRR'],
    'PATT (kv, r=8)': ['PATT (kv, r=8)'],
    'prefix tuning (10 tokens)': ['prefix tuning (10)'],
    'Mona (r=64)': ['Mona (r=64)'],
}


def test_readme_method_table_equals_the_board():
    """The README's last column: each method's mean over the 7 tasks ± its std."""
    results = board()
    header, rows = table_with('README.md', 'method', 'mini-VTAB (mmwst)')
    column = header.index('mini-VTAB (mmwst)')
    # a README row with a board figure maps to its board rows here; any other says "-"
    assert set(README_ROWS) <= {r[0] for r in rows}, 'README rows changed: update README_ROWS'
    wrong = []
    for cells in rows:
        methods = README_ROWS.get(cells[0], [])
        # a trailing note such as "(r=16)" or "(on LoRA)" names the board's variant
        cell = re.sub(r'\s*\([^)]*\)', '', cells[column])
        quoted = [c.strip() for c in cell.split('/')] if methods else []
        if not methods:
            assert cell == '-', f'README, {cells[0]}: not on the board, but quotes {cell}'
        assert len(quoted) == len(methods), f'README, {cells[0]}: {cells[column]}'
        for method, figure in zip(methods, quoted):
            wrong += check_cell(f'README, {cells[0]}', figure, results[method], 'mean', '_ci95')
    assert not wrong, '\n'.join(wrong)


#: (file, a sentence as it reads with its line breaks as spaces and {} for each figure,
#: the raw figures it quotes in order: (raw file, row, column)); a sentence reworded in
#: the doc fails here until its entry is updated, so that a new figure is checked too
B, D = BOARD_CSV, DENSE_CSV
PROSE = [
    (
        'README.md',
        '(a random frozen ViT: {} with the SGD-head linear probe, {} with LoRA)',
        [(B, 'linear probe (SGD head), random ViT', 'mean'), (B, 'LoRA, random ViT', 'mean')],
    ),
    (
        'README.md',
        'e.g. LoRA {} ± {}%, {} ± {}% from a random frozen ViT',
        [
            (B, 'LoRA (r=8, q,v)', 'digits'),
            (B, 'LoRA (r=8, q,v)', 'digits_ci95'),
            (B, 'LoRA, random ViT', 'digits'),
            (B, 'LoRA, random ViT', 'digits_ci95'),
        ],
    ),
    (
        'docs/mini_vtab.md',
        'Logistic regression on the frozen features reaches {}; an SGD-trained head on the '
        'same features reaches {} ± {}',
        [
            (B, 'linear probe (logistic regression)', 'mean'),
            (B, 'linear probe (SGD head)', 'mean'),
            (B, 'linear probe (SGD head)', 'mean_ci95'),
        ],
    ),
    (
        'docs/mini_vtab.md',
        'VPT-shallow ({} ± {}) is below the probe, VPT-deep ({} ± {}) and prefix tuning '
        '({} ± {}) are level with it',
        [
            (B, 'VPT-shallow (10)', 'mean'),
            (B, 'VPT-shallow (10)', 'mean_ci95'),
            (B, 'VPT-deep (10)', 'mean'),
            (B, 'VPT-deep (10)', 'mean_ci95'),
            (B, 'prefix tuning (10)', 'mean'),
            (B, 'prefix tuning (10)', 'mean_ci95'),
        ],
    ),
    (
        'docs/mini_vtab.md',
        'The SGD-head probe reaches {} from the shipped backbone and {} from a random ViT; '
        'LoRA reaches {} against {} from a random ViT.',
        [
            (B, 'linear probe (SGD head)', 'mean'),
            (B, 'linear probe (SGD head), random ViT', 'mean'),
            (B, 'LoRA (r=8, q,v)', 'mean'),
            (B, 'LoRA, random ViT', 'mean'),
        ],
    ),
    (
        'docs/mini_vtab.md',
        '(dsprites orientation: {} vs {} for the SGD-head probe)',
        [
            (B, 'linear probe (SGD head)', 'dsprites_ori'),
            (B, 'linear probe (SGD head), random ViT', 'dsprites_ori'),
        ],
    ),
    (
        'docs/mini_vtab.md',
        'than full fine-tuning** ({} ± {}).',
        [(B, 'full fine-tuning', 'mean'), (B, 'full fine-tuning', 'mean_ci95')],
    ),
    (
        'docs/mini_vtab.md',
        '**Against LoRA** ({} ± {}):',
        [(B, 'LoRA (r=8, q,v)', 'mean'), (B, 'LoRA (r=8, q,v)', 'mean_ci95')],
    ),
    (
        'docs/mini_vtab.md',
        'VPT-shallow is under the logistic-regression probe on dsprites_loc ({} vs {}) and '
        'cell_patches ({} vs {})',
        [
            (B, 'VPT-shallow (10)', 'dsprites_loc'),
            (B, 'linear probe (logistic regression)', 'dsprites_loc'),
            (B, 'VPT-shallow (10)', 'cell_patches'),
            (B, 'linear probe (logistic regression)', 'cell_patches'),
        ],
    ),
    (
        'docs/mini_vtab.md',
        '*FreqFit + LoRA (6 linears) on clevr_dist* ({} ± {})',
        [
            (B, 'FreqFit + LoRA (r=8, 6 linears)', 'clevr_dist'),
            (B, 'FreqFit + LoRA (r=8, 6 linears)', 'clevr_dist_ci95'),
        ],
    ),
    (
        'docs/dense_modes.md',
        'the logistic-regression linear probe of the same frozen ViT reaches {} (dsprites_loc) '
        'and {} (clevr_count), HST as a classification tuner {} and {}, full fine-tuning {} '
        'and {}.',
        [
            (B, 'linear probe (logistic regression)', 'dsprites_loc'),
            (B, 'linear probe (logistic regression)', 'clevr_count'),
            (B, 'HST', 'dsprites_loc'),
            (B, 'HST', 'clevr_count'),
            (B, 'full fine-tuning', 'dsprites_loc'),
            (B, 'full fine-tuning', 'clevr_count'),
        ],
    ),
    (
        'docs/dense_modes.md',
        '(dsprites_loc {} against {}, clevr_count equal,',
        [
            (D, 'dense, beside the ViT', 'dsprites_loc'),
            (D, 'dense, through the ViT', 'dsprites_loc'),
        ],
    ),
]


@pytest.mark.parametrize(
    'doc, sentence, sources', PROSE, ids=[f'{p[0]}:{p[1][:30]}' for p in PROSE]
)
def test_figures_in_the_text_equal_the_csv(doc, sentence, sources):
    assert sentence.count('{}') == len(sources), f'{sentence!r}: one source per {{}}'
    found = figures_in(sentence, flat(doc))
    assert found, f'{doc} no longer says {sentence!r}: update PROSE'
    wrong = [
        f'{doc}: {figure} for {row} / {column}, {raw} has {board(raw)[row][column]}'
        for figure, (raw, row, column) in zip(found, sources)
        if not agrees(figure, board(raw)[row][column])
    ]
    assert not wrong, '\n'.join(wrong)


#: comparisons quoted in docs/mini_vtab.md's prose: the sentence, each {} a signed figure,
#: and its source - (board row, baseline, quantity), the quantity one of 'delta' (the mean
#: difference), 'low' / 'high' (its 95% interval), 'below' (minus the difference) or 'p'
#: (Holm-adjusted); FULL and LORA name the baselines as the board's columns do
FULL, LORA = 'full_finetune', 'lora/vit-t_mini-vtab'
COMPARISONS = [
    (
        'except the two FreqFit rows, which are not shown to differ (p {} and {})',
        [
            ('FreqFit + LoRA (r=8, 6 linears)', FULL, 'p'),
            ('FreqFit + LoRA (r=8, q,v)', FULL, 'p'),
        ],
    ),
    (
        'RLRR comes closest with 2% of its trainable parameters: {} points below on average, '
        'an interval of {} to {}, and below it consistently over tasks and seeds (p {})',
        [('RLRR', FULL, q) for q in ('below', 'low', 'high', 'p')],
    ),
    (
        'SSF is the same case ({}, interval {} to {}, p {})',
        [('SSF', FULL, q) for q in ('delta', 'low', 'high', 'p')],
    ),
    (
        '**Against LoRA** (79.7 ± 0.6): full fine-tuning ({}, interval {} to {}), RLRR ({}, {} '
        'to {}) and FreqFit on all six Linears ({}, {} to {}; the pairs lean its way, p < 0.001,',
        [
            *[
                (row, LORA, q)
                for row in ['full fine-tuning', 'RLRR']
                for q in ('delta', 'low', 'high')
            ],
            *[('FreqFit + LoRA (r=8, 6 linears)', LORA, q) for q in ('delta', 'low', 'high')],
        ],
    ),
    (
        'HST shows how the two questions differ: {} points on the mean with an interval of {} '
        'to {}, yet no consistent lean over the pairs (p {})',
        [('HST', LORA, q) for q in ('delta', 'low', 'high', 'p')],
    ),
    (
        'FreqFit adds {} points (interval {} to {}, p {})',
        [('FreqFit + LoRA (r=8, q,v)', LORA, q) for q in ('delta', 'low', 'high', 'p')],
    ),
]


def _comparison(row: dict[str, str], baseline: str, quantity: str) -> str:
    if quantity == 'p':
        return row[f'vs_{baseline}_p_holm']
    delta, ci = Decimal(row[f'vs_{baseline}_delta']), Decimal(row[f'vs_{baseline}_ci95'])
    value = {'delta': delta, 'below': -delta, 'low': delta - ci, 'high': delta + ci}[quantity]
    return str(value)


@pytest.mark.parametrize('sentence, sources', COMPARISONS, ids=[c[0][:30] for c in COMPARISONS])
def test_comparisons_in_the_text_equal_the_board(sentence, sources):
    """docs/mini_vtab.md's prose on the board: each quoted difference, interval bound and
    adjusted p-value against the board's CSV (the signs included)."""
    assert sentence.count('{}') == len(sources), f'{sentence!r}: one source per {{}}'
    found = figures_in(sentence, flat('docs/mini_vtab.md'), SIGNED)
    assert found, f'docs/mini_vtab.md no longer says {sentence!r}: update COMPARISONS'
    results = board()
    wrong = []
    for figure, (name, baseline, quantity) in zip(found, sources):
        raw = _comparison(results[name], baseline, quantity)
        if not agrees(figure.lstrip('+'), raw):
            wrong.append(f'{name} vs {baseline}, {quantity}: {figure}, the CSV {raw}')
    if 'p < 0.001' in sentence:
        p = float(results['FreqFit + LoRA (r=8, 6 linears)'][f'vs_{LORA}_p_holm'])
        wrong += [] if p < 0.001 else [f'FreqFit (6 linears) vs LoRA: p < 0.001, the CSV {p}']
    assert not wrong, '\n'.join(wrong)


#: docs/dense_modes.md's accuracy table: its label -> the dense CSV's row, the demo's run
DENSE_VARIANTS = {
    'WST + HST through the ViT': ('dense, through the ViT', None),
    'WST + HST beside the ViT': ('dense, beside the ViT', 'demo_beside-vit'),
    'HST only (through)': ('dense, HST only', 'demo_hst-only'),
    'WST only (its pyramid)': ('dense, WST only', 'demo_wst-only'),
}
DET_METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP')


def test_dense_variant_table_equals_its_raw_files():
    """The two mini-VTAB columns against the dense CSV; the detector's and segmentor's
    seed-0 figures (and the detector's range over seeds) against the demo summaries."""
    results = board(DENSE_CSV)
    demos = json.loads(read(DEMO_JSON))
    header, rows = table_with('docs/dense_modes.md', 'variant', 'dsprites_loc', 'clevr_count')
    assert {r[0] for r in rows} == set(DENSE_VARIANTS)
    det = header.index('detector bbox mAP / mAP@50 / mask mAP')
    seg = header.index('segmentor mIoU')
    wrong = []
    for cells in rows:
        method, demo = DENSE_VARIANTS[cells[0]]
        for task in ('dsprites_loc', 'clevr_count'):
            where = f'dense_modes.md, {cells[0]}, {task}'
            wrong += check_cell(where, cells[header.index(task)], results[method], task)
        if demo is None:  # the demo's own runs of the time, before demo_summaries.json
            continue
        seed0 = demos[f'{demo}_seed0']
        figures = cells[det].replace('*', '').split(' (')[0].split(' / ')
        for figure, metric in zip(figures, DET_METRICS, strict=True):
            if not agrees(figure, str(seed0['det']['metrics'][metric])):
                wrong.append(f'{cells[0]}, {metric}: {figure}, {DEMO_JSON} has {seed0["det"]}')
        miou = cells[seg].split(' (')[0]
        if not agrees(miou, str(seed0['seg']['metrics']['mIoU'])):
            wrong.append(f'{cells[0]}, mIoU: {miou}, {DEMO_JSON} has {seed0["seg"]}')
        spread = re.search(r'seeds 0-2: bbox (\d\.\d+)-(\d\.\d+)', cells[det])
        if spread:
            bbox = [v['det']['metrics']['coco/bbox_mAP'] for k, v in demos.items() if demo in k]
            assert len(bbox) == 3, f'{demo}: {len(bbox)} seeds in {DEMO_JSON}'
            for figure, raw in zip(spread.groups(), (min(bbox), max(bbox))):
                if not agrees(figure, str(raw)):
                    wrong.append(f'{cells[0]}, bbox over seeds: {figure}, {DEMO_JSON}: {raw}')
    assert not wrong, '\n'.join(wrong)


#: docs/mini_vtab.md's learning-rate table labels -> docs/mini_vtab/lr_selection.md's
LR_LABELS = {
    'vpt shallow': 'vpt/vpt-shallow_vit-t_mini-vtab',
    'vpt deep': 'vpt/vpt-deep_vit-t_mini-vtab',
    'freqfit (q,v)': 'freqfit/lora-qv-freqfit_vit-t_mini-vtab',
}


def test_learning_rate_table_equals_the_selection_output():
    """docs/mini_vtab.md copies the table tools/select_lr.py wrote, row for row."""
    header, rows = table_with('docs/mini_vtab.md', 'method', 'chosen')
    raw_header, raw_rows = table_with('docs/mini_vtab/lr_selection.md', 'method', 'chosen')
    assert header == raw_header
    copied = {LR_LABELS.get(r[0], r[0]): r[1:] for r in rows}
    assert copied == {r[0]: r[1:] for r in raw_rows}


@pytest.mark.parametrize(
    'quoted, raw, expected',
    [
        ('40.7', '40.73', True),
        ('40.8', '40.73', False),
        ('1.2', '1.25', True),  # the CSV's 5 was rounded from either side
        ('1.3', '1.25', True),
        ('1.1', '1.25', False),
        ('0.18', '0.184', True),
        ('0.520', '0.52', True),
        ('1,280', '1280', True),
    ],
)
def test_the_rounding_rule(quoted, raw, expected):
    assert agrees(quoted, raw) is expected


STUDY_CSV = 'docs/dense_modes/side_pyramid_study.csv'


def study_rows() -> list[dict[str, str]]:
    with open(REPO / STUDY_CSV, newline='') as f:
        return list(csv.DictReader(f))


def test_side_pyramid_study_tables_equal_the_csv():
    """docs/dense_modes.md's two tables of the side-pyramid study, row by row against
    the study's CSV (the experiments in the CSV's order; WST's pyramid as configured is
    the last row of the first table and the first of the second), and each row's config
    exists."""
    rows = study_rows()
    for row in rows:
        assert (REPO / row['config']).is_file(), f'{STUDY_CSV}: no {row["config"]}'
    _, first = table_with('docs/dense_modes.md', 'experiment', 'bbox mAP', 'mask mAP')
    _, second = table_with('docs/dense_modes.md', "WST's pyramid", 'held-out bbox mAP')
    assert len(first) + len(second) - 1 == len(rows), 'one table row per CSV row'
    wrong = []
    for cells, row in zip(first, rows):
        loss, mask = (c.strip() for c in cells[3].split('/'))
        pairs = [
            (cells[1], 'bbox_mAP'),
            (cells[2], 'segm_mAP'),
            (loss, 'end_loss'),
            (mask, 'end_mask_loss'),
        ]
        for quoted, key in pairs:
            if not agrees(quoted.replace('*', ''), row[key]):
                wrong.append(f'{cells[0]}: {key} {quoted}, the CSV has {row[key]}')
    for cells, row in zip(second, rows[len(first) - 1 :]):
        pairs = [(cells[1], 'bbox_mAP'), (cells[2], 'bbox_mAP_50'), (cells[3], 'heldout_bbox_mAP')]
        for quoted, key in pairs:
            quoted = quoted.replace('*', '')
            if quoted == '-' and row[key] == '':
                continue
            if quoted == '-' or not agrees(quoted, row[key]):
                wrong.append(f'{cells[0]}: {key} {quoted}, the CSV has {row[key]}')
    assert not wrong, '\n'.join(wrong)


GPU_ROWS = {
    'frozen': 'frozen',
    'full fine-tuning': 'full_finetune',
    'LoRA': 'lora',
    'SSF': 'ssf',
    'WST': 'wst',
    'HST': 'hst',
    'RLRR': 'rlrr',
    'through the ViT': 'dense_wst_hst',
    'beside the ViT': 'dense_beside_vit',
}


def _ratio_figures(cell: str) -> list[str]:
    """``'0.88x (0.83, 0.93)'`` -> ``['0.88', '0.83', '0.93']``; ``'-'`` -> ``[]``."""
    return re.findall(r'\d+\.\d+', cell)


@pytest.mark.parametrize(
    'columns, raw',
    [
        (('train img/s', 'before', 'share of bf16 peak'), 'h200_rework_vit-b16_224_b64'),
        (('train img/s', 'step / same method eager'), 'h200_rework_compile_224_b64'),
        (('train img/s', 'before', 'memory / full FT'), 'h200_rework_dense_512_b8'),
        (('train img/s', 'profiled device time per step'), 'h200_compile_hst_224_b64'),
    ],
)
def test_gpu_rework_tables_equal_the_json(columns, raw):
    """docs/benchmark.md's H200 tables after the rework, row by row against the
    benchmark's JSON: training images/s, the step against full fine-tuning (and, for
    eager runs of two rounds, each round's value where the table gives them) and
    inference against the frozen forward."""
    results = {r['method']: r for r in json.loads(read(f'docs/benchmark/{raw}.json'))}
    header, rows = (
        table_with('docs/benchmark.md', *columns)
        if 'same method eager' in columns
        else next(
            t
            for t in tables('docs/benchmark.md')
            if all(c in t[0] for c in columns)
            and any(GPU_ROWS.get(r[0]) in results for r in t[1])
            and all(GPU_ROWS.get(r[0]) in results for r in t[1])
            and any('through' in r[0] for r in t[1]) == ('dense' in raw)
        )
    )
    col = {name: header.index(name) for name in header}
    wrong, seen = [], 0
    for cells in rows:
        r = results[GPU_ROWS[cells[0]]]
        if 'error' in r:
            assert 'failed' in cells[col['train img/s']], f'{cells[0]} failed in {raw}'
            continue
        seen += 1
        if r.get('train_img_s') is not None:
            quoted = cells[col['train img/s']]
            if not agrees(quoted, str(round(r['train_img_s']))):
                wrong.append(f'{cells[0]}: train img/s {quoted}, the JSON has {r["train_img_s"]}')
            figures = _ratio_figures(cells[col['step / full FT']])
            raws = [r['train_vs_full_ft'], *(r.get('train_vs_full_ft_rounds') or [])]
            if len(figures) == 1:
                raws = raws[:1]
            if len(figures) != len(raws) or not all(
                agrees(q, f'{v:.4f}') for q, v in zip(figures, raws)
            ):
                wrong.append(f'{cells[0]}: step / full FT {figures}, the JSON has {raws}')
        inference = _ratio_figures(cells[col['inference / frozen']])
        if not inference or not agrees(inference[0], f'{r["infer_vs_frozen"]:.4f}'):
            wrong.append(f'{cells[0]}: inference {inference}, the JSON has {r["infer_vs_frozen"]}')
    assert seen >= 2, f'{raw}: only {seen} rows checked'
    assert not wrong, '\n'.join(wrong)


def test_compiled_dense_figures_equal_the_json():
    """The second H200 run's compiled dense backbone, as docs/benchmark.md quotes it."""
    runs = {
        r['method']: r for r in json.loads(read('docs/benchmark/h200_compile_dense_512_b8.json'))
    }
    dense = runs['dense_wst_hst']
    text = flat('docs/benchmark.md')
    assert f'through the ViT **{dense["train_vs_full_ft"]:.2f}x** full fine-tuning' in text
    assert f'inference {dense["infer_vs_frozen"]:.2f}x the frozen forward' in text
    assert f'{dense["mem_vs_full_ft"]:.2f}x its memory' in text
    assert f'compile {round(dense["compile_s"])} s' in text
    assert 'dense_beside_vit' not in runs  # the text says it was not measured


def test_config_speed_table_equals_the_json():
    """docs/gpu.md's whole detector and segmentor on the H200, row by row against
    tools/config_speed.py's JSON: parameters, seconds per iteration and spread, the
    ratios to full fine-tuning, peak memory and the schedule's hours."""
    raw = json.loads(read('docs/benchmark/h200_config_speed.json'))
    assert raw['device'] == 'NVIDIA H200' and raw['amp'] == 'fp16'
    runs = {(r['suite'], r['name']): r for r in raw['rows']}
    header, rows = table_with('docs/gpu.md', 's / iteration', 'schedule on 8 GPUs (h)')
    col = {name: header.index(name) for name in header}
    ratio = [i for i, name in enumerate(header) if name == 'vs full FT']
    wrong = []
    for cells in rows:
        suite = 'coco' if cells[0].startswith('COCO') else 'ade20k'
        name = cells[col['model']].split(' (`')[0]
        r = runs[(suite, name)]  # the table names each model as the tool does
        size = int(cells[0].split('x')[-1])
        step, spread = re.fullmatch(r'(\d+\.\d+) \((\d+)%\)', cells[col['s / iteration']]).groups()
        checks = [
            (cells[col['trainable']], str(r['trainable'])),
            (step, f'{r["step_s"]:.6f}'),
            (spread, f'{100 * r["step_spread"]:.4f}'),
            (cells[ratio[0]].rstrip('x'), f'{r["step_vs_full"]:.6f}'),
            (cells[col['peak memory (GiB)']], f'{r["peak_gib"]:.6f}'),
            (cells[ratio[1]].rstrip('x'), f'{r["peak_vs_full"]:.6f}'),
            (cells[col['schedule on 8 GPUs (h)']], f'{r["schedule_hours"]:.6f}'),
        ]
        if size != r['size'] or r['gpus'] != 8 or r['batch_per_gpu'] != 2:
            wrong.append(f'{cells[0]} {name}: size, GPUs or batch differ from the JSON')
        wrong += [f'{cells[0]} {name}: {q} against {v}' for q, v in checks if not agrees(q, v)]
    assert len(rows) == len(raw['rows']) == 8
    assert not wrong, '\n'.join(wrong)


MIXED_CSV = 'docs/dense_modes/mixed_pyramid_runs.csv'


def test_mixed_pyramid_table_equals_the_csv():
    """docs/dense_modes.md's table of the mixed pyramid against WST's, per pyramid: the
    seeds' validation and held-out bbox mAP in seed order, and the ranges of mAP@50 and
    mask mAP, against the CSV of the runs; every config named there exists."""
    with open(REPO / MIXED_CSV, newline='') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert (REPO / row['config']).is_file(), f'{MIXED_CSV}: no {row["config"]}'
    header, table = table_with('docs/dense_modes.md', 'held-out bbox mAP, seeds 0 / 1 / 2')
    assert len(table) == 2
    wrong = []
    for cells, pyramid in zip(table, ('mixed', 'wst')):
        runs = sorted((r for r in rows if r['pyramid'] == pyramid), key=lambda r: int(r['seed']))
        assert [r['seed'] for r in runs] == ['0', '1', '2'], pyramid
        for column, key in ((1, 'bbox_mAP'), (3, 'heldout_bbox_mAP')):
            wrong += per_seed_disagreements(cells[column], runs, key, pyramid)
        for column, key in (
            (2, 'bbox_mAP_50'),
            (4, 'heldout_bbox_mAP_50'),
            (5, 'heldout_segm_mAP'),
        ):
            low, high = cells[column].split('-')
            values = sorted((r[key] for r in runs), key=float)
            if not (agrees(low, values[0]) and agrees(high, values[-1])):
                wrong.append(f'{pyramid}: {key} {cells[column]}, CSV {values[0]}-{values[-1]}')
    # WST's rows are the demo's own runs (docs/dense_modes/wst_pyramid_demo_runs.json)
    demo = {
        str(r['seed']): r
        for r in json.loads(read('docs/dense_modes/wst_pyramid_demo_runs.json'))['runs']
    }
    for run in (r for r in rows if r['pyramid'] == 'wst'):
        figures = demo[run['seed']]
        for key, source in (
            ('bbox_mAP', figures['det']['bbox_mAP']),
            ('bbox_mAP_50', figures['det']['bbox_mAP_50']),
            ('segm_mAP', figures['det']['segm_mAP']),
            ('heldout_bbox_mAP', figures['held_out']['bbox_mAP']),
            ('heldout_bbox_mAP_50', figures['held_out']['bbox_mAP_50']),
            ('heldout_segm_mAP', figures['held_out']['segm_mAP']),
        ):
            if float(run[key]) != source:
                wrong.append(
                    f'wst seed {run["seed"]}: {key} {run[key]}, wst_pyramid_demo_runs.json {source}'
                )
    assert not wrong, '\n'.join(wrong)


# ---- the demo detector (docs/dense_modes.md, README) ----------------------------------------
DEMO_DET_CSV = 'docs/dense_modes/demo_detector_runs.csv'


def _demo_detector_runs() -> list[dict[str, str]]:
    with open(REPO / DEMO_DET_CSV, newline='') as f:
        return list(csv.DictReader(f))


def _range(values: list[str]) -> tuple[str, str]:
    ordered = sorted(values, key=float)
    return ordered[0], ordered[-1]


def test_demo_detector_tables_equal_the_csv():
    """The budget table (validation, seed 0) and the seeds table (validation and
    held-out) of docs/dense_modes.md against the runs' CSV; docs/demo/demo_runs.json and
    the README's held-out and validation ranges say the same."""
    runs = _demo_detector_runs()
    budget = [r for r in runs if r['seed'] == '0' and r['run'] in ('budget', 'before-copy-paste')]
    header, table = table_with('docs/dense_modes.md', 'training images', 'iterations')
    assert len(table) == len(budget) == 3
    wrong = []
    for cells, run in zip(table, budget):
        for column, key in (
            ('training images', 'images'),
            ('epochs', 'epochs'),
            ('iterations', 'iterations'),
            ('bbox mAP', 'bbox_mAP'),
            ('mAP@50', 'bbox_mAP_50'),
            ('mask mAP', 'segm_mAP'),
            ('minutes', 'minutes'),
        ):
            quoted = cells[header.index(column)].replace('*', '')
            if not agrees(quoted, run[key]):
                wrong.append(
                    f'budget {run["images"]} x {run["epochs"]}: {column} {quoted}, CSV {run[key]}'
                )
    demo = sorted((r for r in runs if r['run'] == 'demo'), key=lambda r: int(r['seed']))
    assert [r['seed'] for r in demo] == ['0', '1', '2']
    header, table = table_with('docs/dense_modes.md', 'seeds 0 / 1 / 2', 'mask mAP')
    assert [c[0].replace('*', '').split(' (')[0] for c in table] == ['validation', 'held-out']
    for cells, prefix in zip(table, ('', 'heldout_')):
        wrong += per_seed_disagreements(cells[1], demo, prefix + 'bbox_mAP', 'demo')
        for column, key in ((2, 'bbox_mAP_50'), (3, 'segm_mAP')):
            low, high = cells[column].split('-')
            values = _range([r[prefix + key] for r in demo])
            if not (agrees(low, values[0]) and agrees(high, values[1])):
                wrong.append(f'{prefix}{key}: {cells[column]}, CSV {values}')
    record = {r['seed']: r for r in json.loads(read('docs/demo/demo_runs.json'))['runs']}
    for run in demo:
        saved = record[int(run['seed'])]
        for key in ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP'):
            if float(run[key]) != saved['det'][key]:
                wrong.append(f'demo_runs.json seed {run["seed"]}: {key}')
            if float(run['heldout_' + key]) != saved['held_out'][key]:
                wrong.append(f'demo_runs.json seed {run["seed"]}: held-out {key}')
    # the recipes' table: before copy-paste, copy-paste, the positives shared out (all on
    # the mixed pyramid) and the demo, seeds 0 / 1 / 2 per cell
    header, table = table_with('docs/dense_modes.md', 'missed, selection split', 'recipe')
    before, copy_paste, balanced = (
        sorted((r for r in runs if r['run'] == name), key=lambda r: int(r['seed']))
        for name in ('before-copy-paste', 'copy-paste', 'instance-balanced')
    )
    assert [c[0].replace('*', '') for c in table] == [
        'before copy-paste',
        'copy-paste, batches of 4, 48 regions',
        'and positives shared out per object, the stages weighed alike',
        "and the ViT's last map as the fine levels (pyramid='vit')",
    ]
    for cells, recipe in zip(table, (before, copy_paste, balanced, demo)):
        for column, key in (
            ('validation bbox mAP', 'bbox_mAP'),
            ('held-out bbox mAP', 'heldout_bbox_mAP'),
            ('held-out mask mAP', 'heldout_segm_mAP'),
            ('missed, selection split', 'select_missed'),
            ('false, selection split', 'select_false'),
            ('missed, held-out', 'heldout_missed'),
            ('false, held-out', 'heldout_false'),
            ('minutes (detector)', 'minutes'),
        ):
            cell = cells[header.index(column)]
            wrong += per_seed_disagreements(cell, recipe, key, recipe[0]['run'])
    readme = flat('README.md')
    for sentence, key in (
        ('Cascade Mask R-CNN bbox mAP **{}-{}** over seeds 0-2', 'heldout_bbox_mAP'),
        ('(mAP@50 {}-{}, mask mAP', 'heldout_bbox_mAP_50'),
        ('On the validation images: bbox mAP {}-{}', 'bbox_mAP'),
    ):
        found = figures_in(sentence, readme, DECIMAL)
        assert found, f'README no longer says {sentence!r}'
        low, high = _range([r[key] for r in demo])
        if not (agrees(found[0], low) and agrees(found[1], high)):
            wrong.append(f'README {sentence!r}: {found}, CSV {low}-{high}')
    assert not wrong, '\n'.join(wrong)


def test_shapes_rows_table_equals_the_csv():
    """docs/dense_modes.md's table of the shapes demo on WST + HST and on Mona against
    the runs' CSV; every config it names exists."""
    with open(REPO / 'docs/dense_modes/shapes_rows.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    header, table = table_with('docs/dense_modes.md', 'held-out mask mAP', 'mIoU', 'backbone')
    assert [c[0] for c in table] == [r['row'] for r in rows]
    wrong = []
    for cells, row in zip(table, rows):
        for key in ('det_config', 'seg_config'):
            assert (REPO / row[key]).is_file(), row[key]
        det, seg = cells[1].split(' / ')
        checks = [
            (det, row['det_trainable_backbone_neck']),
            (seg, row['seg_trainable_backbone_neck']),
            (cells[2], row['bbox_mAP']),
            (cells[3], row['heldout_bbox_mAP']),
            (cells[4], row['heldout_segm_mAP']),
            (cells[5], row['mIoU']),
            *zip(cells[6].split(' / '), (row['det_minutes'], row['seg_minutes'])),
        ]
        wrong += [
            f'{row["row"]}: {q} against {v}' for q, v in checks if not agrees(q.strip('*'), v)
        ]
    assert not wrong, '\n'.join(wrong)


def test_mona_detector_seeds_equal_their_csv():
    """docs/dense_modes.md's figures of Mona's shapes detector over seeds 0-2 against
    their CSV, whose seed 0 is the Mona row of the shapes table."""
    with open(REPO / 'docs/dense_modes/mona_detector_seeds.csv', newline='') as f:
        seeds = {row['seed']: row for row in csv.DictReader(f)}
    with open(REPO / 'docs/dense_modes/shapes_rows.csv', newline='') as f:
        mona = next(r for r in csv.DictReader(f) if r['row'].startswith('Mona'))
    keys = ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'heldout_bbox_mAP', 'heldout_segm_mAP')
    assert {k: seeds['0'][k] for k in keys} == {k: mona[k] for k in keys}
    sentence = (
        'validation bbox mAP {} and {}, held-out {} and {} (mask {} and {}), so {}-{} held-out '
        'over seeds 0-2; the half-hidden triangle at {} on seed 1 but {} on seed 2'
    )
    found = figures_in(sentence, flat('docs/dense_modes.md'), DECIMAL)
    assert found, 'docs/dense_modes.md no longer says the Mona seeds sentence'
    held_out = sorted((row['heldout_bbox_mAP'] for row in seeds.values()), key=float)
    expected = [
        seeds['1']['bbox_mAP'],
        seeds['2']['bbox_mAP'],
        seeds['1']['heldout_bbox_mAP'],
        seeds['2']['heldout_bbox_mAP'],
        seeds['1']['heldout_segm_mAP'],
        seeds['2']['heldout_segm_mAP'],
        held_out[0],
        held_out[-1],
        seeds['1']['hidden_triangle_score'],
        seeds['2']['hidden_triangle_score'],
    ]
    wrong = [f'{q} against {r}' for q, r in zip(found, expected) if not agrees(q, r)]
    assert not wrong, wrong
    triangle = f'the half-hidden triangle included (at score {seeds["0"]["hidden_triangle_score"]},'
    assert triangle in flat('docs/dense_modes.md')


def test_roi_align_speed_table_equals_the_tools_output():
    """docs/dense_modes.md's RoIAlign timings are tools/roi_align_speed.py's output, saved."""
    output = read('docs/dense_modes/roi_align_speed.txt')
    measured = re.findall(
        r'^\s*(\d+x\d+)\s+(forward|backward)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+x)$', output, re.M
    )
    header, table = table_with('docs/dense_modes.md', 'mmcv (ms)', 'separable (ms)')
    assert [tuple(cells) for cells in table] == measured


# ---- the pretraining data's choice, on val200 (docs/pretrained.md) ---------------------------
PRETRAIN_CHOICE = {
    'FractalDB-style, 256 categories': 'fractaldb-256',
    'procedural scenes, 256 categories': 'scenes-256',
    'procedural scenes, 64 categories': 'scenes-64',
    'random ViT, seed 0': 'random_seed0',
    'random ViT, seed 1': 'random_seed1',
}
MINI_VTAB_TASKS = [
    'digits', 'land_cover', 'cell_patches', 'dsprites_loc', 'dsprites_ori', 'clevr_count',
    'clevr_dist',
]  # fmt: skip


def test_pretraining_choice_table_equals_the_probe_records():
    """Each candidate's val200 scores, their mean, the test mean beside it and the
    upstream accuracy, as the probes and the pretraining cards wrote them; the chosen
    data (the fractals) has the best val200 mean."""
    header, rows = table_with('docs/pretrained.md', 'mean (val200)')
    assert {r[0] for r in rows} == set(PRETRAIN_CHOICE)
    wrong, means = [], {}
    for cells in rows:
        name = PRETRAIN_CHOICE[cells[0]]
        probe = json.loads(read(f'docs/pretrained/{name}_probe.json'))['tasks']
        val = [probe[t]['val'] for t in MINI_VTAB_TASKS]
        figures = [(cells[header.index(t)], val[i]) for i, t in enumerate(MINI_VTAB_TASKS)]
        figures.append((cells[header.index('mean (val200)')].strip('*'), sum(val) / 7))
        test = sum(probe[t]['test'] for t in MINI_VTAB_TASKS) / 7
        figures.append((cells[header.index('mean (test, not used)')], test))
        upstream = cells[header.index('upstream top-1')]
        if upstream != '-':
            card = json.loads(read(f'docs/pretrained/{name}_card.json'))
            figures.append((upstream.rstrip('%'), card['upstream']['accuracy/top1']))
        for quoted, raw in figures:
            if not agrees(quoted, str(raw)):
                wrong.append(f'docs/pretrained.md, {cells[0]}: {quoted}, the record: {raw}')
        means[name] = sum(val) / 7
    assert not wrong, '\n'.join(wrong)
    assert max(means, key=means.get) == 'fractaldb-256'


def test_bf16_operator_table_equals_the_json():
    """docs/benchmark.md's operators per training step under bf16 autocast, row by row
    against the three --ops-only runs (float32; bf16; bf16 with the frozen weights held in
    bf16), and the H200 eager step ratios it sets beside them against that run's JSON."""
    runs = {
        name: {r['method']: r for r in json.loads(read(f'docs/benchmark/{name}.json'))}
        for name in ('cpu_ops_fp32', 'cpu_ops_bf16', 'cpu_ops_bf16_frozen')
    }
    assert {r.get('amp') for r in runs['cpu_ops_bf16'].values()} == {'bf16'}
    assert {r.get('frozen_dtype') for r in runs['cpu_ops_bf16_frozen'].values()} == {'bf16'}
    gpu = {}
    for raw in ('h200_rework_vit-b16_224_b64', 'h200_rework_dense_512_b8'):
        gpu.update({r['method']: r for r in json.loads(read(f'docs/benchmark/{raw}.json'))})
    header, rows = table_with('docs/benchmark.md', 'bf16, frozen weights bf16')
    col = {name: header.index(name) for name in header}
    columns = {'float32': 'cpu_ops_fp32', 'bf16': 'cpu_ops_bf16'}
    columns['bf16, frozen weights bf16'] = 'cpu_ops_bf16_frozen'
    wrong = []
    for cells in rows:
        method = cells[0].strip('`')
        full = {name: runs[name]['full_finetune']['train_ops'] for name in runs}
        for label, name in columns.items():
            ops = runs[name][method]['train_ops']
            if cells[col[label]] != f'{ops:,}':
                wrong.append(f'{method}: {label} {cells[col[label]]}, the JSON has {ops}')
        for label, name in (
            ('/ full FT', 'cpu_ops_bf16'),
            ('frozen bf16 / full FT', 'cpu_ops_bf16_frozen'),
        ):
            ratio = runs[name][method]['train_ops'] / full[name]
            if not agrees(cells[col[label]].rstrip('x'), f'{ratio:.4f}'):
                wrong.append(f'{method}: {label} {cells[col[label]]}, the JSON gives {ratio}')
        quoted = cells[col['H200 eager step / full FT']]
        if method in gpu and 'train_vs_full_ft' in gpu[method]:
            if not agrees(quoted.rstrip('x'), f'{gpu[method]["train_vs_full_ft"]:.4f}'):
                wrong.append(f'{method}: H200 {quoted}, the JSON has {gpu[method]}')
        else:
            assert quoted == '-', method
    assert len(rows) >= 8
    assert not wrong, '\n'.join(wrong)


def method_rows_against_runs(
    header: list[str], rows: list[list[str]], runs: dict, keys: dict, absent: str | None = None
) -> list[str]:
    """A benchmark table whose rows start with a method's name (in backticks or not),
    cell by cell against that method's run: ``keys`` maps a column to ``(JSON key,
    format)``. ``absent``: what a cell shows where the run has no such key (None: the
    key must be there). Returns the cells that differ."""
    col = {name: header.index(name) for name in header}
    wrong = []
    for cells in rows:
        method = cells[0].strip('`')
        for label, (key, fmt) in keys.items():
            run = runs[method]
            want = absent if absent is not None and key not in run else fmt.format(run[key])
            if cells[col[label]] != want:
                wrong.append(f'{method}: {label} {cells[col[label]]}, the JSON gives {want}')
    return wrong


def test_compiled_kernel_table_equals_the_json():
    """docs/benchmark.md's kernels per compiled step and inference forward, row by row
    against the --ops-only --compile run, and its eager column against the same run's
    eager counts."""
    runs = {r['method']: r for r in json.loads(read('docs/benchmark/cpu_ops_compiled.json'))}
    assert {r.get('compile') for r in runs.values()} == {'inductor'}
    header, rows = table_with('docs/benchmark.md', 'kernels / compiled step')
    keys = {
        'eager ops / step': ('train_ops', '{:,}'),
        'kernels / compiled step': ('compiled_train_kernels', '{:,}'),
        'compiled / LoRA': ('compiled_train_vs_lora', '{:.2f}x'),
        'compiled / full FT': ('compiled_train_vs_full_ft', '{:.2f}x'),
        'kernels / compiled inference': ('compiled_infer_kernels', '{:,}'),
        'compiled inference / frozen': ('compiled_infer_vs_frozen', '{:.2f}x'),
    }
    wrong = method_rows_against_runs(header, rows, runs, keys)
    assert len(rows) >= 10
    assert not wrong, '\n'.join(wrong)
    # FreqFit + LoRA counted again after the table, in a run of its own
    again = json.loads(read('docs/benchmark/cpu_ops_compiled_freqfit.json'))
    freqfit = {r['method']: r for r in again}['freqfit_lora']
    quoted = (
        f'{freqfit["train_ops"]} -> {freqfit["compiled_train_kernels"]} kernels, '
        f"{freqfit['compiled_train_vs_full_ft']:.2f}x full fine-tuning's, "
        f'{freqfit["compiled_infer_kernels"]} per inference'
    )
    assert quoted in flat('docs/benchmark.md'), quoted


def test_operator_table_equals_the_json():
    """docs/benchmark.md's operators per training step and per inference forward
    (float32, ViT-B/16 224, batch 8), row by row against the --ops-only run, and the
    targets table's "now" column against the same run."""
    runs = {r['method']: r for r in json.loads(read('docs/benchmark/cpu_ops_table.json'))}
    assert {(r['img_size'], r['batch'], r['amp']) for r in runs.values()} == {(224, 8, 'none')}
    header, rows = table_with('docs/benchmark.md', 'ops / train step')
    keys = {
        'trainable': ('trainable', '{:,}'),
        'ops / train step': ('train_ops', '{:,}'),
        'ops / LoRA': ('train_ops_vs_lora', '{:.2f}x'),
        'ops / full FT': ('train_ops_vs_full_ft', '{:.2f}x'),
        'ops / inference': ('infer_ops', '{:,}'),
        'inference ops / frozen': ('infer_ops_vs_frozen', '{:.2f}x'),
        'graph breaks': ('graph_breaks', '{}'),
    }
    wrong = method_rows_against_runs(header, rows, runs, keys, absent='-')
    assert len(rows) == len(runs)
    _, targets = table_with('docs/benchmark.md', 'before', 'now', 'target')
    now = {cells[0]: cells[2] for cells in targets}
    for label, method, ref, key in (
        ('HST, training step', 'hst', 'LoRA', 'train_ops_vs_lora'),
        ('HST, inference', 'hst', 'frozen', 'infer_ops_vs_frozen'),
        ('WST, training step', 'wst', 'LoRA', 'train_ops_vs_lora'),
        (
            'dense through the ViT, training step',
            'dense_wst_hst',
            'full FT',
            'train_ops_vs_full_ft',
        ),
        (
            'dense beside the ViT, training step',
            'dense_beside_vit',
            'full FT',
            'train_ops_vs_full_ft',
        ),
    ):
        ops = runs[method]['infer_ops' if 'inference' in label else 'train_ops']
        want = f'{runs[method][key]:.2f}x {ref} ({ops:,})'
        if now[label] != want:
            wrong.append(f'targets, {label}: {now[label]}, the JSON gives {want}')
    assert not wrong, '\n'.join(wrong)


def test_operator_counts_at_64_pixels_equal_their_json():
    """The counts re-measured at 64x64, batch 2 (docs/benchmark.md, after the bf16 table)
    against their three runs, and the claim that every method but the dense backbone
    counts there what it counts at 224, batch 8."""
    text = ' '.join(read('docs/benchmark.md').split())
    runs = {
        name: {r['method']: r for r in json.loads(read(f'docs/benchmark/cpu_ops_{name}_64.json'))}
        for name in ('fp32', 'bf16', 'bf16_frozen')
    }
    assert {r['img_size'] for run in runs.values() for r in run.values()} == {64}

    def ops(name, method):
        return f'{runs[name][method]["train_ops"]:,}'

    def ratio(name, method):
        return f'{runs[name][method]["train_ops_vs_full_ft"]:.2f}x'

    phrases = [
        f'HST: {ops("bf16", "hst")} in bf16',
        f'and {ops("bf16_frozen", "hst")} with frozen weights in bf16 (947)',
        f'FreqFit + LoRA: {ops("bf16", "freqfit_lora")} in bf16 '
        f"({ratio('bf16', 'freqfit_lora')} full fine-tuning's)",
        f'{ops("bf16_frozen", "freqfit_lora")} with frozen weights in bf16 '
        f'({ratio("bf16_frozen", "freqfit_lora")})',
        f'64x64: {ops("bf16", "dense_wst_hst")} and {ops("bf16", "dense_beside_vit")} in bf16, '
        f'{ops("bf16_frozen", "dense_wst_hst")} and {ops("bf16_frozen", "dense_beside_vit")} '
        'with frozen weights in bf16',
        f'({ops("fp32", "dense_wst_hst")} and {ops("fp32", "dense_beside_vit")} against',
        f'BitFit: {ops("bf16", "bitfit")} in bf16 and {ops("bf16_frozen", "bitfit")} with '
        f'frozen weights in bf16 ({ratio("bf16_frozen", "bitfit")}), '
        f'{runs["bf16_frozen"]["bitfit"]["infer_ops"]} per merged inference forward',
        f'VPT-deep: {ops("bf16", "vpt_deep")} and {ops("bf16_frozen", "vpt_deep")} '
        f'({ratio("bf16_frozen", "vpt_deep")}), {runs["bf16_frozen"]["vpt_deep"]["infer_ops"]} '
        'per inference forward',
        f'bf16, 377 -> {ops("bf16_frozen", "vpt_deep")} operators per step and 155 -> '
        f'{runs["bf16_frozen"]["vpt_deep"]["infer_ops"]} per inference forward',
        f'bf16, 439 -> {ops("bf16_frozen", "bitfit")} operators per step '
        f"({ratio('bf16_frozen', 'bitfit')} full fine-tuning's 659) and 179 -> "
        f'{runs["bf16_frozen"]["bitfit"]["infer_ops"]} per merged inference forward',
    ]
    missing = [p for p in phrases if p not in text]
    assert not missing, missing
    table = {r['method']: r for r in json.loads(read('docs/benchmark/cpu_ops_table.json'))}
    old = {r['method']: r for r in json.loads(read('docs/benchmark/cpu_ops_bf16.json'))}
    for method, run in runs['fp32'].items():
        same = run.get('train_ops') == table[method].get('train_ops')
        assert same != method.startswith('dense'), method
    for method in ('frozen', 'full_finetune', 'lora', 'ssf', 'rlrr', 'wst'):
        assert runs['bf16'][method].get('train_ops') == old[method].get('train_ops'), method
