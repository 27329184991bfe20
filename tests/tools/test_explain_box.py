"""tools/explain_box.py: what the detections, the RPN and each cascade stage say about
one object's box, on the demo detector (untrained weights: the report's form and the
cascade's chaining are checked, not what a trained detector would say)."""

import json
import os.path as osp
import re

import pytest

from tests.helpers import REPO, TOOLS, run_tool, untrained_detector_checkpoint

pytest.importorskip('mmdet')

DEMO_DET = osp.join(REPO, 'configs', 'demo', 'shapes_cascade_mask_rcnn.py')
STAGE = re.compile(
    r'^  stage (\d): region \[([-\d, ]+)\] -> (.+); regressed to \[([-\d, ]+)\] \(IoU ([\d.]+)\)$'
)


# the demo detector with one RoI-head stage (mmdet's StandardRoIHead, class-specific boxes)
ONE_STAGE = f"""
_base_ = [{DEMO_DET!r}]
model = dict(
    type='FasterRCNN',
    roi_head=dict(
        _delete_=True,
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=64,
            featmap_strides=[4, 8, 16, 32],
        ),
        bbox_head=dict(
            type='Shared2FCBBoxHead', in_channels=64, num_classes=3, reg_class_agnostic=False
        ),
    ),
    train_cfg=dict(rcnn=dict(_delete_=True, assigner=dict(type='MaxIoUAssigner',
        pos_iou_thr=0.5, neg_iou_thr=0.5), sampler=dict(type='RandomSampler', num=64,
        pos_fraction=0.25), pos_weight=-1)),
    test_cfg=dict(rcnn=dict(_delete_=True, score_thr=0.05, nms=dict(type='nms',
        iou_threshold=0.5), max_per_img=20)),
)
"""


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    root = tmp_path_factory.mktemp('explain')
    data = write_shapes_dataset(str(root / 'shapes'), num_train=1, num_val=1)
    with open(data['val_ann_file']) as f:
        annotations = json.load(f)
    x, y, w, h = annotations['annotations'][0]['bbox']
    image = osp.join(data['val_img_dir'], annotations['images'][0]['file_name'])
    checkpoint = untrained_detector_checkpoint(DEMO_DET, str(root / 'detector.pth'))
    return checkpoint, image, [x, y, x + w, y + h]


def test_reports_proposals_and_each_stage_on_the_best_proposal_and_the_true_box(detector):
    checkpoint, image, box = detector
    args = [DEMO_DET, checkpoint, image, '--box', *map(str, box)]
    proc = run_tool([osp.join(TOOLS, 'explain_box.py'), *args], cwd=REPO)
    lines = proc.stdout.splitlines()
    assert any(line.startswith('detections overlapping [') for line in lines), proc.stdout
    assert any(re.match(r'proposals overlapping it most \(of \d+\):', x) for x in lines)
    sections = [i for i, line in enumerate(lines) if line.startswith('the RoI head on ')]
    assert [lines[i] for i in sections] == [
        'the RoI head on the best proposal:',
        'the RoI head on the true box:',
    ]
    for start in sections:
        stages = [STAGE.match(line) for line in lines[start + 1 : start + 4]]
        assert all(stages), lines[start : start + 4]
        assert [int(s[1]) for s in stages] == [0, 1, 2]
        for stage in stages:
            names = [item.rsplit(' ', 1)[0] for item in stage[3].split(', ')]
            assert names == ['circle', 'square', 'triangle', 'background']
            probabilities = [float(item.rsplit(' ', 1)[1]) for item in stage[3].split(', ')]
            assert abs(sum(probabilities) - 1) <= 0.003, stage[0]
        # a cascade: each stage reads the box the stage before regressed to
        for before, after in zip(stages, stages[1:]):
            assert after[2] == before[4], (before[0], after[0])
    true_box = STAGE.match(lines[sections[1] + 1])
    assert [int(v) for v in true_box[2].split(', ')] == [round(v) for v in box]


def test_a_malformed_box_is_refused_before_the_model_is_built(detector):
    checkpoint, image, _ = detector
    args = [DEMO_DET, checkpoint, image, '--box', '10', '10', '5', '20']
    proc = run_tool([osp.join(TOOLS, 'explain_box.py'), *args], cwd=REPO, check=False)
    assert proc.returncode == 2 and 'X2 > X1' in proc.stderr


def test_a_one_stage_roi_head_gets_one_verdict_per_region(detector, tmp_path):
    _, image, box = detector
    config = tmp_path / 'one_stage.py'
    config.write_text(ONE_STAGE)
    checkpoint = untrained_detector_checkpoint(str(config), str(tmp_path / 'one_stage.pth'))
    args = [str(config), checkpoint, image, '--box', *map(str, box)]
    lines = run_tool([osp.join(TOOLS, 'explain_box.py'), *args], cwd=REPO).stdout.splitlines()
    sections = [i for i, line in enumerate(lines) if line.startswith('the RoI head on ')]
    assert len(sections) == 2
    for start in sections:
        stage = STAGE.match(lines[start + 1])
        assert stage and stage[1] == '0', lines[start + 1]
        assert start + 2 == len(lines) or not STAGE.match(lines[start + 2])
