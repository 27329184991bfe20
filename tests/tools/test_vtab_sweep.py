"""tools/vtab_sweep.py: two methods on the generated digits task, one table and chart.

Also the proof that training learns: full fine-tuning from random weights and LoRA + SSF
on a random frozen backbone both end far above chance (10%) after 4 short epochs.
"""

import csv
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.helpers import REPO, TOOLS, run_tool

CONFIGS = [
    osp.join(REPO, 'configs', 'demo', name)
    for name in ('digits_vit_tiny.py', 'digits_vit_tiny_lora.py')
]
METHODS = ['demo/digits_vit_tiny', 'demo/digits_vit_tiny_lora']
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def sweep(digits_root, tmp_path_factory):
    from mmengine.registry import MODELS, init_default_scope

    import mmwst  # noqa: F401

    base = tmp_path_factory.mktemp('sweep')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIGS[0]).model)
    model.init_weights()
    pretrained = base / 'random_base.pth'
    torch.save({'state_dict': model.state_dict()}, pretrained)

    args = [
        osp.join(TOOLS, 'vtab_sweep.py'),
        *CONFIGS,
        '--tasks',
        'digits',
        '--data-root',
        osp.dirname(digits_root),
        '--work-dir',
        str(base / 'work'),
        '--cfg-options',
        'train_cfg.max_epochs=4',
        'train_cfg.val_interval=2',
        f'model.backbone.pretrained={pretrained}',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=50',
    ]
    first = run_tool(args, cwd=REPO)
    again = run_tool(args, cwd=REPO)
    best = run_tool([*args, '--best-epoch', '--report-only'], cwd=REPO)
    return dict(work=base / 'work', first=first, again=again, best=best)


def test_both_methods_learn_far_above_chance(sweep):
    for method in METHODS:
        result = json.loads((sweep['work'] / method / 'digits' / 'result.json').read_text())
        assert result['final'] > 30.0, (method, result)  # chance is 10%
        assert result['validations'] == 2 and result['best'] >= result['final']


def test_report_has_table_csv_and_chart(sweep):
    md = (sweep['work'] / 'vtab_results.md').read_text()
    assert 'final-epoch' in md and all(m in md for m in METHODS)
    with open(sweep['work'] / 'vtab_results.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ['method', 'digits'] and rows[0][-2:] == ['mean (19)', 'mean of groups']
    finals = {row[0]: float(row[1]) for row in rows[1:]}
    for method in METHODS:
        expected = json.loads((sweep['work'] / method / 'digits' / 'result.json').read_text())
        assert finals[method] == pytest.approx(expected['final'], abs=0.05)
    png = sweep['work'] / 'vtab_results.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 5000


def test_rerun_skips_finished_tasks_and_best_epoch_is_labelled(sweep):
    assert 'training in' in sweep['first'].stdout
    assert 'training in' not in sweep['again'].stdout
    md = (sweep['work'] / 'vtab_results_best_epoch_optimistic.md').read_text()
    assert 'optimistic' in md


def test_group_means_need_every_task():
    from mmwst.datasets.vtab import VTAB_GROUPS, VTAB_TASKS
    from mmwst.utils.vtab_report import summarise

    accs = {task: float(i) for i, task in enumerate(VTAB_TASKS)}
    summary = summarise(accs)
    assert summary['mean'] == pytest.approx(sum(range(19)) / 19)
    groups = [sum(accs[t] for t in tasks) / len(tasks) for tasks in VTAB_GROUPS.values()]
    assert summary['group_mean'] == pytest.approx(sum(groups) / 3)
    del accs['kitti']
    partial = summarise(accs)
    assert partial['natural'] == pytest.approx(groups[0])
    assert partial['mean'] != partial['mean']  # NaN: incomplete
