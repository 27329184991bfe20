"""mmwst configs under the OpenMMLab projects' own tools (mmdet's, mmpretrain's train.py)."""

import importlib.util
import os.path as osp

import pytest

from tests.helpers import DEMO_CONFIG, REPO, run_tool, tiny_digits_options, tool_env

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
    proc = run_tool(
        [
            _upstream_tool('mmpretrain', 'train.py'),
            DEMO_CONFIG,
            '--work-dir',
            str(tmp_path / 'run'),
            '--cfg-options',
            *tiny_digits_options(digits_root, epochs=1),
        ],
        cwd=REPO,
    )
    assert osp.isfile(tmp_path / 'run' / 'epoch_1.pth'), proc.stderr[-2000:]
