"""tools/detection_errors.py: the objects a picture at a score threshold would miss and
the false detections it would draw, counted per image (hand-made boxes) and over a
config's test set (the demo detector, untrained: the totals' bookkeeping is checked)."""

import glob
import json
import os.path as osp

import pytest

from tests.helpers import REPO, TOOLS, run_tool, tool_env, untrained_detector_checkpoint

pytest.importorskip('mmdet')

DEMO_DET = osp.join(REPO, 'configs', 'demo', 'shapes_cascade_mask_rcnn.py')


def _count(detections, truths, score_thr=0.5, iou_thr=0.5):
    import torch

    from tools.detection_errors import count_errors

    boxes, scores, labels = zip(*detections) if detections else ((), (), ())
    found = (
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.long),
    )
    true_boxes, true_labels = zip(*truths) if truths else ((), ())
    truth = (
        torch.tensor(true_boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(true_labels, dtype=torch.long),
    )
    return count_errors(found, truth, score_thr, iou_thr)


SQUARE, TRIANGLE = 1, 2
BOX = [10.0, 10.0, 30.0, 30.0]
SHIFTED = [16.0, 10.0, 36.0, 30.0]  # IoU 14/26 = 0.54 with BOX
OFF = [20.0, 10.0, 40.0, 30.0]  # IoU 10/30 = 0.33 with BOX


@pytest.mark.parametrize(
    ('detections', 'missed', 'false'),
    [
        ([(BOX, 0.9, SQUARE)], [], []),
        ([(SHIFTED, 0.9, SQUARE)], [], []),  # IoU 0.54 finds it
        ([(BOX, 0.9, SQUARE), (SHIFTED, 0.8, SQUARE)], [], []),  # a second box: not false
        ([(BOX, 0.4, SQUARE)], [SQUARE], []),  # below the threshold: not drawn
        ([(BOX, 0.9, TRIANGLE)], [SQUARE], [TRIANGLE]),  # the wrong class
        ([(OFF, 0.9, SQUARE)], [SQUARE], [SQUARE]),  # the box off the object
        ([], [SQUARE], []),
    ],
)
def test_an_object_is_found_by_a_drawn_box_of_its_class_overlapping_it(detections, missed, false):
    counts = _count(detections, [(BOX, SQUARE)])
    assert counts == dict(objects=1, missed=missed, false=false)


def test_each_object_and_each_drawn_box_is_judged_on_its_own():
    """Two objects, one found; a box on the background; thresholds as given."""
    truths = [(BOX, SQUARE), ([50.0, 50.0, 70.0, 80.0], TRIANGLE)]
    detections = [(BOX, 0.95, SQUARE), ([90.0, 90.0, 100.0, 100.0], 0.6, TRIANGLE)]
    assert _count(detections, truths) == dict(objects=2, missed=[TRIANGLE], false=[TRIANGLE])
    # a stricter IoU makes the shifted box a miss and a false detection
    shifted = [(SHIFTED, 0.9, SQUARE)]
    assert _count(shifted, [(BOX, SQUARE)], iou_thr=0.6) == dict(
        objects=1, missed=[SQUARE], false=[SQUARE]
    )
    # an image without objects: every drawn box is false
    assert _count(detections, []) == dict(objects=0, missed=[], false=[SQUARE, TRIANGLE])


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    root = tmp_path_factory.mktemp('errors')
    data = write_shapes_dataset(str(root / 'shapes'), num_train=1, num_val=3)
    checkpoint = untrained_detector_checkpoint(DEMO_DET, str(root / 'detector.pth'))
    return data, checkpoint, root


def test_counts_over_the_test_set_add_up(detector):
    """On the config's test set (SHAPES_ROOT): as many objects as the annotation file
    holds, split per class; at a threshold no score reaches, every object is missed and
    nothing is false; at 0, every drawn box is either on an object or counted false."""
    data, checkpoint, root = detector
    with open(data['val_ann_file']) as f:
        objects = len(json.load(f)['annotations'])
    results = {}
    for thr in ('1.01', '0'):
        out = root / f'errors_{thr}.json'
        run_tool(
            [
                osp.join(TOOLS, 'detection_errors.py'),
                DEMO_DET,
                checkpoint,
                '--score-thr',
                thr,
                '--out',
                str(out),
            ],
            cwd=REPO,
            env=tool_env(SHAPES_ROOT=data['root']),
        )
        results[thr] = json.loads(out.read_text())
    none = results['1.01']
    assert none['images'] == 3 and none['objects'] == objects
    assert none['missed'] == objects and none['false'] == 0
    assert sum(c['objects'] for c in none['per_class'].values()) == objects
    assert sorted(e['image'] for e in none['images_with_errors']) == sorted(
        osp.basename(p) for p in glob.glob(osp.join(data['val_img_dir'], '*.png'))
    )
    every = results['0']
    assert every['objects'] == objects and every['missed'] <= objects
    assert sum(c['false'] for c in every['per_class'].values()) == every['false']


def test_a_wrong_threshold_is_refused_before_the_model_loads():
    proc = run_tool(
        [osp.join(TOOLS, 'detection_errors.py'), DEMO_DET, DEMO_DET, '--iou-thr', '0'],
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and '--iou-thr must be in (0, 1]' in proc.stderr
