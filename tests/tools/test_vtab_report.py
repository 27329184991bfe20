"""tools/vtab_report.py's statistics and its runs file: the 95% intervals over seeds, the
paired comparison with a baseline (by seed and task), Holm's adjustment, the marks, and
a board rebuilt from the runs alone equal to the one written from the sweep's folders."""

import csv
import math
import statistics

import pytest

from tests.helpers import REPO, TOOLS, run_tool

MINI = ['digits', 'land_cover', 'cell_patches', 'dsprites_loc', 'dsprites_ori']
MINI += ['clevr_count', 'clevr_dist']
# Student's t quantiles for a two-sided 95% interval, from printed tables
T975 = {1: 12.7062, 2: 4.3027, 4: 2.7764}


def _runs(offset: float, seeds=range(5), noise=None):
    """task -> seed -> result: 50 + 3 * task index + seed + offset (+ noise[task][seed])."""
    return {
        t: {
            str(s): dict(final=50.0 + 3 * i + s + offset + (noise[i][s] if noise else 0.0))
            for s in seeds
        }
        for i, t in enumerate(MINI)
    }


def test_interval_is_students_t_over_the_seeds():
    from tools.vtab_report import _stat, t_quantile

    for df, value in T975.items():
        assert t_quantile(df) == pytest.approx(value, abs=1e-4)
    stat = _stat([1.0, 2.0, 3.0, 4.0, 5.0])
    assert stat.mean == 3.0 and stat.std == pytest.approx(math.sqrt(2.5))
    assert stat.ci95 == pytest.approx(T975[4] * math.sqrt(2.5) / math.sqrt(5), abs=1e-4)
    assert _stat([7.0]) == (7.0, 0.0, 0.0)  # one run: no interval


def test_the_averages_carry_their_interval():
    from tools.vtab_report import aggregate

    agg = aggregate(_runs(0.0, seeds=range(3)), 'final', MINI, 'mini-vtab')
    # the mean over tasks is 50 + 9 + seed: 59, 60, 61
    mean = agg['averages']['mean']
    assert mean.mean == pytest.approx(60.0) and mean.std == pytest.approx(1.0)
    assert mean.ci95 == pytest.approx(T975[2] / math.sqrt(3), abs=1e-4)


def test_comparison_pairs_by_seed_and_task():
    from tools.vtab_report import compare

    base = _runs(0.0)
    # one point better on every run: delta 1, no spread, 35 pairs, significant
    c = compare(_runs(1.0), base, MINI)
    assert (c.delta, c.ci95, c.pairs, c.seeds) == (pytest.approx(1.0), pytest.approx(0), 35, 5)
    assert c.p < 1e-4
    # the same runs with the seeds shuffled against the base's: pairing matters, so
    # the paired differences are no longer all +1
    shuffled = {
        t: {str((int(s) + 1) % 5): r for s, r in seeds.items()} for t, seeds in _runs(1.0).items()
    }
    assert compare(shuffled, base, MINI).ci95 > 0
    # differences that cancel: +-2 alternating over tasks and seeds
    noise = [[2.0 if (i + s) % 2 else -2.0 for s in range(5)] for i in range(7)]
    c = compare(_runs(0.0, noise=noise), base, MINI)
    assert abs(c.delta) < 0.5 and c.p > 0.5
    # a deterministic method (one run per task, no seeds) pairs with every seed
    probe = {t: {'-': dict(final=60.0 + 3 * i)} for i, t in enumerate(MINI)}
    c = compare(probe, base, MINI)
    assert c.seeds == 5 and c.pairs == 35
    assert c.delta == pytest.approx(10.0 - statistics.fmean(range(5)))
    # nothing in common: no comparison
    assert compare(_runs(1.0, seeds=[7]), base, MINI) is None


def test_holm_adjustment_and_marks():
    from tools.vtab_report import Comparison, holm, mark

    adjusted = holm({'a': 0.01, 'b': 0.04, 'c': 0.03})
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1, kept monotone: 0.03, 0.06, 0.06
    assert adjusted == pytest.approx({'a': 0.03, 'c': 0.06, 'b': 0.06})
    assert holm({'a': 0.6, 'b': 0.7}) == {'a': 1.0, 'b': 1.0}
    better, worse = Comparison(1.0, 0.5, 0.001, 35, 5), Comparison(-1.0, 0.5, 0.001, 35, 5)
    assert mark((better, 0.01)) == '▲' and mark((worse, 0.01)) == '▼'
    assert mark((better, 0.06)) == '=' and mark(None) == '-'


def test_board_has_marks_and_a_comparison_table(tmp_path):
    from tools.vtab_report import write_report

    methods = {
        'base': _runs(0.0),
        'up': _runs(2.0),
        'same': _runs(0.0, noise=[[0.2 * (-1) ** (i + s) for s in range(5)] for i in range(7)]),
    }
    md, table, _ = write_report(
        methods, str(tmp_path / 'b'), baselines=['base'], names={'base': 'Base'}
    )
    text = open(md).read()
    assert '| method |' in text and '| vs Base |' in text.replace(' |\n', ' |\n')
    board = text.split('\n\n')[1]  # the first table (the comparisons follow)
    rows = {line.split(' | ')[0].strip('| '): line for line in board.splitlines()[2:]}
    assert rows['Base'].rstrip(' |').endswith('-')
    assert 'Δ vs Base [95% CI]' in text and '+2.0 [+2.0, +2.0]' in text
    with open(table, newline='') as f:
        cells = {r['method']: r for r in csv.DictReader(f)}
    assert cells['up']['vs_base_delta'] == '2.00' and cells['up']['vs_base'] == '▲'
    assert float(cells['up']['mean_ci95']) == pytest.approx(
        T975[4] * math.sqrt(2.5) / math.sqrt(5), abs=0.01
    )
    with pytest.raises(ValueError, match="baseline 'nope' is not a method"):
        write_report(methods, str(tmp_path / 'c'), baselines=['nope'])


def test_the_chart_grows_down_with_the_methods_not_sideways(tmp_path):
    """One panel per task and the mean, the methods as bars down each panel: twenty
    methods make a taller picture of the same width as three (a board of 21 methods was
    once 7,056 pixels wide)."""
    from PIL import Image

    from tools.vtab_report import write_report

    sizes = []
    for count in (3, 20):
        methods = {f'm{i}': _runs(float(i)) for i in range(count)}
        *_, picture = write_report(methods, str(tmp_path / f'{count}'))
        sizes.append(Image.open(picture).size)
    (width_3, height_3), (width_20, height_20) = sizes
    assert width_3 == width_20 <= 2000, sizes
    assert height_20 > 2 * height_3, sizes


def test_runs_file_round_trips_and_the_board_rebuilds_from_it(tmp_path):
    from tools.vtab_report import read_runs, write_report, write_runs

    methods = {
        'probe': {
            t: {'-': dict(final=40.0 + i, seconds=1.5, trainable_without_head=0)}
            for i, t in enumerate(MINI)
        },
        'lora': {
            t: {
                s: dict(
                    final=v['final'] + 0.123456789,
                    best=v['final'] + 1,
                    seconds=20.0,
                    trainable_without_head=32768,
                )
                for s, v in seeds.items()
            }
            for t, seeds in _runs(0.0).items()
        },
    }
    names = {'probe': 'a probe', 'lora': 'LoRA'}
    path = tmp_path / 'runs.csv'
    assert write_runs(methods, str(path), names) == 7 + 35
    back, back_names = read_runs(str(path))
    assert list(back) == ['probe', 'lora'] and back_names == names
    assert back['lora']['digits']['3']['final'] == methods['lora']['digits']['3']['final']
    assert back['probe']['clevr_dist']['-'] == dict(
        final=46.0, best=46.0, seconds=1.5, trainable_without_head=0
    )
    # the board from the runs file equals the board from the results themselves
    direct = write_report(methods, str(tmp_path / 'direct'), names=names, baselines=['lora'])
    proc = run_tool(
        [
            f'{TOOLS}/vtab_report.py',
            'board',
            str(path),
            '--out',
            str(tmp_path / 'rebuilt'),
            '--baselines',
            'lora',
        ],
        cwd=REPO,
    )
    assert '[report]' in proc.stdout
    for ext, first in (('md', direct[0]), ('csv', direct[1])):
        assert (tmp_path / f'rebuilt.{ext}').read_text() == open(first).read()
    # a run listed twice is refused
    with open(path, 'a') as f:
        f.write(path.read_text().splitlines()[1] + '\n')
    with pytest.raises(ValueError, match='seed - twice'):
        read_runs(str(path))
    bad = run_tool(
        [f'{TOOLS}/vtab_report.py', 'board', str(tmp_path / 'missing.csv'), '--out', 'x'],
        cwd=REPO,
        check=False,
    )
    assert bad.returncode == 2 and 'missing.csv' in bad.stderr


def test_restore_writes_the_runs_back_into_a_sweeps_folders(tmp_path):
    """A sweep continued elsewhere: the runs file becomes result.json files that the
    sweep's loader reads as the same results, and nothing already there is overwritten."""
    from tools.vtab_report import load_results, restore_runs, write_runs

    methods = {
        'probe': {t: {'-': dict(final=40.0 + i, best=40.0 + i)} for i, t in enumerate(MINI)},
        'lora': {
            t: {s: dict(r, best=r['final'], seconds=2.5) for s, r in seeds.items()}
            for t, seeds in _runs(0.0, seeds=range(2)).items()
        },
    }
    path = tmp_path / 'runs.csv'
    write_runs(methods, str(path), {'probe': 'a probe', 'lora': 'LoRA'})
    sweep = tmp_path / 'sweep'
    kept = sweep / 'lora' / 'digits' / 'seed0' / 'result.json'
    kept.parent.mkdir(parents=True)
    kept.write_text('{"final": 99.0, "best": 99.0}')
    assert restore_runs(str(path), str(sweep)) == (7 + 14 - 1, 1)
    assert load_results(str(sweep / 'lora'))['digits']['0']['final'] == 99.0  # left alone
    back = load_results(str(sweep / 'lora'))
    assert back['clevr_dist']['1']['final'] == methods['lora']['clevr_dist']['1']['final']
    assert back['clevr_dist']['1']['seconds'] == 2.5
    probe = load_results(str(sweep / 'probe'))
    assert probe['digits']['-']['final'] == 40.0 and probe['digits']['-']['label'] == 'a probe'
    assert restore_runs(str(path), str(sweep)) == (0, 21)  # a second call writes nothing
