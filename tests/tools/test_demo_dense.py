"""tools/demo_dense.py (the main job of tools/run_demo.sh) end to end on tiny settings:
data generated, both models trained, evaluated with the real metrics, pictures drawn, a
second run resumes instead of training again."""

import json
import os
import os.path as osp

import pytest

from tests.helpers import REPO, TOOLS, run_tool

pytestmark = pytest.mark.slow

DET_OPTIONS = [
    'train_cfg.max_epochs=1',
    'train_cfg.val_interval=1',
    'train_dataloader.batch_size=4',
    'param_scheduler=[]',
]
SEG_OPTIONS = [
    'train_cfg.max_iters=2',
    'train_cfg.val_interval=2',
    'train_dataloader.batch_size=4',
    'default_hooks.checkpoint.interval=2',
    'param_scheduler=[]',
]


def _demo(work_dir, data_root):
    return run_tool(
        [
            osp.join(TOOLS, 'demo_dense.py'),
            '--work-dir',
            str(work_dir),
            '--data-root',
            str(data_root),
            '--num-train',
            '8',
            '--num-val',
            '2',
            '--det-options',
            *DET_OPTIONS,
            '--seg-options',
            *SEG_OPTIONS,
        ],
        cwd=REPO,
    )


def test_demo_dense_end_to_end_and_rerun(tmp_path):
    work_dir, data_root = tmp_path / 'demo', tmp_path / 'shapes'
    proc = _demo(work_dir, data_root)
    assert (data_root / 'annotations' / 'instances_train.json').is_file()
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert set(summary) == {'seed', 'jobs', 'det', 'seg'} and summary['seed'] == 0
    # both trained at once, the cores shared out between them
    cores = len(os.sched_getaffinity(0))
    assert summary['jobs'] == 2
    assert summary['det']['threads'] == summary['seg']['threads'] == max(1, cores // 2)
    det, seg = summary['det']['metrics'], summary['seg']['metrics']
    assert 0.0 <= det['coco/bbox_mAP'] <= 1.0 and 0.0 <= det['coco/segm_mAP'] <= 1.0
    assert 0.0 <= seg['mIoU'] <= 100.0 and 0.0 < seg['aAcc'] <= 100.0
    for task in ('det', 'seg'):
        picture = work_dir / f'{task}_predictions.png'
        assert picture.stat().st_size > 1000 and summary[task]['picture'] == str(picture)
    assert 'Cascade Mask R-CNN: coco/bbox_mAP' in proc.stdout and 'UperNet: mIoU' in proc.stdout
    # a finished run is evaluated again, not trained again
    checkpoint = (work_dir / 'det' / 'epoch_1.pth').stat().st_mtime_ns
    _demo(work_dir, data_root)
    assert (work_dir / 'det' / 'epoch_1.pth').stat().st_mtime_ns == checkpoint
    assert json.loads((work_dir / 'summary.json').read_text())['det']['metrics'] == det


def test_demo_dense_rejects_malformed_overrides(tmp_path):
    proc = run_tool(
        [osp.join(TOOLS, 'demo_dense.py'), '--work-dir', str(tmp_path), '--det-options', 'x'],
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and 'KEY=VALUE' in proc.stderr
