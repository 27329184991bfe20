"""tools/demo_dense.py (the main job of tools/run_demo.sh) end to end on tiny settings:
data generated, both models trained, evaluated with the real metrics, pictures drawn, a
second run resumes instead of training again."""

import importlib.util
import json
import os
import os.path as osp

import pytest

from tests.helpers import REPO, TOOLS, run_tool, untrained_detector_checkpoint
from tests.training_logs import last_validation

pytestmark = pytest.mark.slow

# the trainings validate here (the demo skips it by default, as its test evaluates the
# same images): the test below compares the two
VALIDATE = 'train_cfg.val_begin=1'
DET_OPTIONS = [
    'train_cfg.max_epochs=1',
    'default_hooks.logger.interval=1',
    'train_cfg.val_interval=1',
    VALIDATE,
    'train_dataloader.batch_size=4',
    'param_scheduler=[]',
    # every scored box kept (mmdet's threshold is 0.05), so that the runs have detections
    # to compare whatever two iterations leave: at the demo's lr 1e-3 without warm-up
    # they left none above 0.05
    'model.test_cfg.rcnn.score_thr=0.0',
]
SEG_OPTIONS = [
    'train_cfg.max_iters=2',
    'default_hooks.logger.interval=1',
    'train_cfg.val_interval=2',
    VALIDATE,
    'train_dataloader.batch_size=4',
    'default_hooks.checkpoint.interval=2',
    'param_scheduler=[]',
]


def _tool_module(name: str):
    """tools/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _demo(work_dir, data_root, predictions, *extra):
    # the detector's validation and test also write their detections (COCO results
    # files): after so short a training every mAP is 0 whatever the weights are, while
    # the detections tell which weights made them
    det_outputs = [
        f'val_evaluator.outfile_prefix={predictions}/val',
        f'test_evaluator.outfile_prefix={predictions}/test',
    ]
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
            *det_outputs,
            '--seg-options',
            *SEG_OPTIONS,
            *extra,
        ],
        cwd=REPO,
    )


def test_demo_dense_end_to_end_and_rerun(tmp_path):
    work_dir, data_root = tmp_path / 'demo', tmp_path / 'shapes'
    predictions = tmp_path / 'det_predictions'
    proc = _demo(work_dir, data_root, predictions)
    assert (data_root / 'annotations' / 'instances_train.json').is_file()
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert set(summary) == {'seed', 'jobs', 'det', 'seg'} and summary['seed'] == 0
    # both trained at once, the cores shared out between them
    cores = len(os.sched_getaffinity(0))
    assert summary['jobs'] == 2
    assert summary['det']['threads'] == summary['seg']['threads'] == max(1, cores // 2)
    det, seg = summary['det']['metrics'], summary['seg']['metrics']
    assert set(det) == {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'}
    assert set(seg) == {'mIoU', 'aAcc'}
    # the summary shows what tools/test.py measured on the last checkpoint, and that is
    # what the training's own validation of the same model gave at its end (the same
    # images: test_dataloader is val_dataloader; the same thread count); the detector's
    # figures are all 0 here whatever its weights, so its detections are compared too
    for kind in ('bbox', 'segm'):
        tested = json.loads((predictions / f'test.{kind}.json').read_text())
        validated = json.loads((predictions / f'val.{kind}.json').read_text())
        assert validated, f'{kind}: the validation detected nothing to compare with'
        assert tested == validated, f'{kind}: the test tool detected other things'
    for task, metrics, last_step in (('det', det, 1), ('seg', seg, 2)):
        tested = json.loads((work_dir / task / 'metrics.json').read_text())
        assert metrics == {k: tested[k] for k in metrics}, task
        validated = last_validation(work_dir / task, next(iter(metrics)))
        assert validated['step'] == last_step, (task, validated)
        assert metrics == {k: validated[k] for k in metrics}, (task, validated)
    for task in ('det', 'seg'):
        picture = work_dir / f'{task}_predictions.png'
        assert picture.stat().st_size > 1000 and summary[task]['picture'] == str(picture)
    assert 'Cascade Mask R-CNN: coco/bbox_mAP' in proc.stdout and 'UperNet: mIoU' in proc.stdout
    # a live line per model while it trains (both iterations of each), each a whole line
    lines = proc.stdout.splitlines()
    for label, where in (('det training', 'epoch 1, iter {}/2'), ('seg training', 'iter {}/2')):
        for it in (1, 2):
            start = f'[demo] {label}: {where.format(it)}, loss '
            assert any(line.startswith(start) and line.endswith(' min left') for line in lines), (
                start,
                proc.stdout,
            )
    assert all(line.startswith('[demo]') for line in lines if '[demo]' in line)
    # by default the trainings skip their last validation, which the test repeats: the
    # option comes first in the training's command (so that a user's wins, as here) and
    # is not passed to the test
    demo = _tool_module('demo_dense')
    for task in ('det', 'seg'):
        train = next(line for line in lines if 'train.py' in line and f'/{task} ' in line)
        test = next(line for line in lines if 'test.py' in line and f'/{task} ' in line)
        assert f'--cfg-options {demo.NO_VAL} randomness.seed=0 ' in train, train
        assert train.index(demo.NO_VAL) < train.index(f' {VALIDATE} '), train
        assert demo.NO_VAL not in test, test
    # a finished run is evaluated again, not trained again (the detector alone: the
    # segmentor's rerun goes through the same code)
    checkpoint = (work_dir / 'det' / 'epoch_1.pth').stat().st_mtime_ns
    again = _demo(work_dir, data_root, predictions, '--only', 'det')
    assert (work_dir / 'det' / 'epoch_1.pth').stat().st_mtime_ns == checkpoint
    assert '[demo] det training: epoch 1, iter' not in again.stdout
    assert json.loads((work_dir / 'summary.json').read_text())['det']['metrics'] == det


def test_demo_dense_rejects_malformed_overrides(tmp_path):
    proc = run_tool(
        [osp.join(TOOLS, 'demo_dense.py'), '--work-dir', str(tmp_path), '--det-options', 'x'],
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and 'KEY=VALUE' in proc.stderr


def test_progress_lines_read_from_mmengine_logs():
    """What the demo prints while a model trains, from the log lines mmengine writes for
    epoch-based (the detector) and iteration-based (the segmentor) loops."""
    demo = _tool_module('demo_dense')
    prefix = '12/04 00:15:01 - mmengine - INFO - '
    epoch = (
        'Epoch(train)  [3][ 10/25]  base_lr: 2.0000e-04 lr: 2.0000e-04  eta: 0:03:45  '
        'time: 0.9154  data_time: 0.0088  memory: 0  loss: 2.8731  loss_rpn_cls: 0.6000'
    )
    assert demo.progress_line(prefix + epoch) == (
        'epoch 3, iter 10/25, loss 2.8731, about 3.8 min left'
    )
    iters = 'Iter(train) [ 60/250]  lr: 1.0000e-03  eta: 1 day, 2:03:30  loss: 0.1500  x: 1'
    assert demo.progress_line(prefix + iters) == 'iter 60/250, loss 0.1500, about 1563.5 min left'
    assert demo.progress_line(prefix + 'Epoch(val) [10][50/50]  coco/bbox_mAP: 0.3000') is None
    assert demo.progress_line('loss: 1.0 eta: 0:00:01') is None


def test_a_detector_that_finds_nothing_is_drawn():
    """tools/visualize_predictions.py enlarges each picture; a detector with no detection
    at all (a short or failed training) still gets its empty picture drawn, not mmdet's
    shape assertion on the masks."""
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData

    tool = _tool_module('visualize_predictions')
    empty = InstanceData(
        bboxes=torch.zeros(0, 4),
        scores=torch.zeros(0),
        labels=torch.zeros(0, dtype=torch.long),
        masks=torch.zeros(0, 32, 48, dtype=torch.bool),
    )
    result = DetDataSample(
        pred_instances=empty, metainfo=dict(img_shape=(32, 48), ori_shape=(32, 48))
    )
    result = tool._scaled_detections(result, 3)
    assert tuple(result.pred_instances.masks.shape) == (0, 96, 144)
    visualizer = DetLocalVisualizer(name='mmwst_test_empty_detections')
    visualizer.dataset_meta = dict(classes=('circle', 'square', 'triangle'))
    image = np.zeros((96, 144, 3), dtype=np.uint8)
    visualizer.add_datasample('prediction', image, result, draw_gt=False, show=False)
    assert visualizer.get_image().shape == (96, 144, 3)


def test_one_checkpoint_always_gives_the_same_picture(tmp_path):
    """mmdet shifts each drawn mask's colour by numpy's global generator; the tool seeds
    it, so a picture does not depend on what ran before it in the process."""
    import numpy as np

    from mmwst.datasets.generation.shapes import write_shapes_dataset

    tool = _tool_module('visualize_predictions')
    data = write_shapes_dataset(str(tmp_path / 'shapes'), num_train=1, num_val=2)
    config = osp.join(REPO, 'configs', 'demo', 'shapes_cascade_mask_rcnn.py')
    checkpoint = untrained_detector_checkpoint(config, str(tmp_path / 'detector.pth'))
    pictures = []
    for seed in (1, 2):
        np.random.seed(seed)  # whatever state the process left
        out = str(tmp_path / f'picture_{seed}.png')
        # every detection of the untrained model drawn, masks included
        args = [config, checkpoint, out, '--images', data['val_img_dir'], '--score-thr', '0']
        assert tool.main(args) == 0
        with open(out, 'rb') as f:
            pictures.append(f.read())
    assert pictures[0] == pictures[1]
