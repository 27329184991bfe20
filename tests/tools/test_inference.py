"""Inference with OpenMMLab's inferencers on mmwst checkpoints (README, "Inference").

mmdet's ``DetInferencer``, mmseg's ``MMSegInferencer`` and mmpretrain's
``ImageClassificationInferencer`` read a tuner-only checkpoint of a short training of
the demo configs (the frozen base read back from ``pretrained``) and predict on a
generated image; the classifier also from its merged checkpoint
(tools/merge_tuners.py --config-out), with the same scores.
"""

import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO, TOOLS, run_tool, tool_env

pytestmark = pytest.mark.slow

DEMO = osp.join(REPO, 'configs', 'demo')
NO_VALIDATION = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']

INFER = """
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, {tools!r})
import merge_tuners

from mmpretrain.apis import ImageClassificationInferencer  # noqa: E402

import mmwst  # noqa: E402,F401


def same_as_file(backbone):
    # the frozen host holds its `pretrained` file's weights (not random ones); what the
    # method trains of the host (HST through the ViT: its LayerNorms) has moved
    trained = {{n for n, p in backbone.named_parameters() if p.requires_grad}}
    own, loaded = backbone._host_state(), backbone._pretrained_state()
    frozen = {{k: v for k, v in loaded.items() if k not in trained}}
    return bool(frozen) and all(torch.equal(own[k], v) for k, v in frozen.items())


out = {{}}
work, shapes_image, digit_image, base = sys.argv[1:5]
cls_config = os.path.join(work, 'cls', 'digits_vit_tiny_lora.py')
# classification first: mmpretrain's inferencer builds its pipeline in whatever default
# scope is current, and the two others set theirs
tuned = ImageClassificationInferencer(
    cls_config, pretrained=os.path.join(work, 'cls', 'epoch_1.pth'), device='cpu'
)
merge_tuners.main([
    cls_config, os.path.join(work, 'cls', 'epoch_1.pth'), os.path.join(work, 'merged.pth'),
    '--config-out', os.path.join(work, 'merged.py'),
])
merged = ImageClassificationInferencer(
    os.path.join(work, 'merged.py'), pretrained=os.path.join(work, 'merged.pth'), device='cpu'
)
frozen = torch.load(base, weights_only=True)['state_dict']['backbone.pos_embed']
for name, inferencer in (('cls', tuned), ('merged', merged)):
    (result,) = inferencer(digit_image)
    out[name] = dict(
        backbone=type(inferencer.model.backbone).__name__,
        classes=list(inferencer.classes or []),
        label=int(result['pred_label']),
        name=result.get('pred_class'),
        scores=np.asarray(result['pred_scores']).tolist(),
        frozen_base=bool(torch.equal(inferencer.model.backbone.pos_embed, frozen)),
    )

from mmdet.apis import DetInferencer  # noqa: E402

det = DetInferencer(
    os.path.join(work, 'det', 'shapes_cascade_mask_rcnn.py'),
    weights=os.path.join(work, 'det', 'epoch_1.pth'),
    device='cpu',
    show_progress=False,
)
sample = det(shapes_image, return_datasamples=True)['predictions'][0]
found = sample.pred_instances
out['det'] = dict(
    classes=list(det.model.dataset_meta['classes']),
    labels=found.labels.tolist(),
    scores=found.scores.tolist(),
    boxes=list(found.bboxes.shape),
    masks=list(found.masks.shape),
    image=list(sample.ori_shape),
    frozen_base=same_as_file(det.model.backbone),
)

from mmseg.apis import MMSegInferencer  # noqa: E402

seg = MMSegInferencer(
    os.path.join(work, 'seg', 'shapes_upernet.py'),
    weights=os.path.join(work, 'seg', 'iter_1.pth'),
    device='cpu',
)
sample = seg(shapes_image, return_datasamples=True)
out['seg'] = dict(
    classes=list(seg.model.dataset_meta['classes']),
    shape=list(sample.pred_sem_seg.data.shape),
    values=sorted(set(sample.pred_sem_seg.data.unique().tolist())),
    image=list(sample.ori_shape),
    frozen_base=same_as_file(seg.model.backbone),
)
print('INFERENCE ' + json.dumps(out))
"""


@pytest.fixture(scope='module')
def predicted(shapes_root, digits_root, random_base, tmp_path_factory):
    """One step of training of each demo (side by side), then the inferencers."""
    work = tmp_path_factory.mktemp('inference')
    vtab_root = osp.dirname(digits_root)
    trainings = {
        'det': [
            osp.join(DEMO, 'shapes_cascade_mask_rcnn.py'),
            'train_cfg.max_epochs=1',
            'train_dataloader.dataset.dataset.indices=2',  # inside the copy-paste wrapper
            'train_dataloader.batch_size=2',
        ],
        'seg': [
            osp.join(DEMO, 'shapes_upernet.py'),
            'train_cfg.max_iters=1',
            'train_dataloader.batch_size=2',
            'default_hooks.checkpoint.interval=1',
        ],
        'cls': [
            osp.join(DEMO, 'digits_vit_tiny_lora.py'),
            f'model.backbone.pretrained={random_base["path"]}',
            f'train_dataloader.dataset.data_root={vtab_root}',
            'train_dataloader.dataset.indices=16',
            'train_cfg.max_epochs=1',
            'default_hooks.checkpoint.interval=1',
        ],
    }
    env = tool_env(SHAPES_ROOT=shapes_root)
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                osp.join(TOOLS, 'train.py'),
                config,
                '--work-dir',
                str(work / name),
                '--cfg-options',
                *options,
                *NO_VALIDATION,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (config, *options) in trainings.items()
    }
    for name, proc in procs.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f'{name} training failed:\n{log[-5000:]}'

    shapes_image = osp.join(shapes_root, 'val', sorted(os.listdir(osp.join(shapes_root, 'val')))[0])
    with open(osp.join(digits_root, 'test.txt')) as f:
        digit_image = osp.join(digits_root, f.readline().split()[0])
    script = work / 'infer.py'
    script.write_text(textwrap.dedent(INFER.format(tools=TOOLS)))
    proc = run_tool(
        [str(script), str(work), shapes_image, digit_image, str(random_base['path'])],
        cwd=str(work),
        env=env,
    )
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith('INFERENCE ')]
    return json.loads(line[len('INFERENCE ') :])


def test_classifier_from_a_tuner_only_checkpoint(predicted):
    cls = predicted['cls']
    assert cls['backbone'] == 'TunedVisionTransformer' and cls['frozen_base']
    assert cls['classes'] == [f'digits_{i}' for i in range(10)]  # from the checkpoint
    assert len(cls['scores']) == 10 and abs(sum(cls['scores']) - 1) < 1e-4
    assert cls['label'] == max(range(10), key=cls['scores'].__getitem__)
    assert cls['name'] == cls['classes'][cls['label']]


def test_merged_classifier_is_plain_mmpretrain_and_predicts_the_same(predicted):
    tuned, merged = predicted['cls'], predicted['merged']
    assert merged['backbone'] == 'VisionTransformer'  # mmpretrain's own
    assert merged['classes'] == tuned['classes']  # carried over by merge_tuners
    assert (merged['label'], merged['name']) == (tuned['label'], tuned['name'])
    for a, b in zip(merged['scores'], tuned['scores']):
        assert a == pytest.approx(b, abs=1e-5)


def test_detector_from_a_tuner_only_checkpoint(predicted):
    det = predicted['det']
    assert det['classes'] == ['circle', 'square', 'triangle']
    count = len(det['labels'])
    assert count >= 1 and set(det['labels']) <= {0, 1, 2}
    assert det['boxes'] == [count, 4] and det['masks'] == [count, *det['image']]
    assert det['image'] == [128, 128]
    assert det['frozen_base']  # read back from the config's `pretrained`
    assert all(0 <= s <= 1 for s in det['scores'])


def test_segmentor_from_a_tuner_only_checkpoint(predicted):
    seg = predicted['seg']
    assert seg['classes'] == ['background', 'circle', 'square', 'triangle']
    assert seg['shape'] == [1, *seg['image']] and seg['image'] == [128, 128]
    assert set(seg['values']) <= {0, 1, 2, 3}
    assert seg['frozen_base']
