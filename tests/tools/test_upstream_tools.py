"""mmwst configs under the OpenMMLab projects' own tools (mmdet's, mmpretrain's train.py)."""

import importlib.util
import json
import os.path as osp

import pytest
import torch

from tests.helpers import DEMO_CONFIG, REPO, run_tool, tiny_digits_options, tool_env
from tests.training_logs import SCORED_METRICS, last_validation, write_scored_config

pytestmark = pytest.mark.slow


def _upstream_tool(package: str, tool: str) -> str:
    """The tool a package ships in its wheel (``<package>/.mim/tools``)."""
    spec = importlib.util.find_spec(package)
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools', tool)
    if not osp.isfile(path):
        pytest.fail(f'{package} ships no {tool} at {path}')
    return path


def test_mmdet_train_tool_names_the_missing_data_before_building_it(tmp_path):
    """It used to fail inside pycocotools without saying which file or how to get it."""
    missing = tmp_path / 'no-shapes'
    proc = run_tool(
        [
            _upstream_tool('mmdet', 'train.py'),
            osp.join(REPO, 'configs', 'demo', 'shapes_cascade_mask_rcnn.py'),
            '--work-dir',
            str(tmp_path / 'run'),
        ],
        cwd=REPO,
        env=tool_env(SHAPES_ROOT=str(missing)),
        check=False,
    )
    assert proc.returncode != 0
    assert f'{missing}/annotations/instances_train.json' in proc.stderr
    assert 'python tools/data/make_shapes.py' in proc.stderr
    assert 'pycocotools' not in proc.stderr


def test_mmpretrain_train_tool_trains_the_digits_config(digits_root, tmp_path):
    run, options = tmp_path / 'run', tiny_digits_options(digits_root, epochs=1)
    # the demo config, validated with the accuracy and the mAP of the scores
    config = write_scored_config(tmp_path / 'scored.py', DEMO_CONFIG)
    run_tool(
        [
            _upstream_tool('mmpretrain', 'train.py'),
            config,
            '--work-dir',
            str(run),
            '--cfg-options',
            *options,
        ],
        cwd=REPO,
    )
    # one epoch of 96 images in batches of 16: six optimizer steps on every parameter
    checkpoint = torch.load(run / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert (checkpoint['meta']['epoch'], checkpoint['meta']['iter']) == (1, 6)
    params = [p for group in checkpoint['optimizer']['param_groups'] for p in group['params']]
    assert len(params) == len(checkpoint['state_dict'])  # the whole tiny ViT trains
    assert sorted(checkpoint['optimizer']['state']) == sorted(params)
    for pid, state in checkpoint['optimizer']['state'].items():
        assert float(state['step']) == 6.0, pid
    # the checkpoint holds the model the training validated last: mmwst's test tool,
    # on the same images (test_dataloader is val_dataloader) and thread count, reports
    # the figures the upstream training logged
    out = tmp_path / 'metrics.json'
    run_tool(
        [
            osp.join(REPO, 'tools', 'test.py'),
            config,
            str(run / 'epoch_1.pth'),
            '--work-dir',
            str(tmp_path / 'test'),
            '--out',
            str(out),
            '--cfg-options',
            *options,
        ],
        cwd=REPO,
    )
    validated = last_validation(run, 'accuracy/top1')
    assert validated['step'] == 1, validated
    assert json.loads(out.read_text()) == {k: validated[k] for k in SCORED_METRICS}
