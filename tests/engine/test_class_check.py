"""A head whose class count differs from the data's stops the run before it starts."""

import os.path as osp

import pytest

from tests.helpers import DEMO_CONFIG, REPO, TOOLS, run_tool, tiny_digits_options

pytestmark = pytest.mark.slow


@pytest.mark.parametrize('classes', [7, 12])
def test_head_classes_must_match_the_data(digits_root, tmp_path, classes):
    """Fewer classes used to crash at the first iteration, more used to train silently."""
    args = [
        osp.join(TOOLS, 'train.py'),
        DEMO_CONFIG,
        '--work-dir',
        str(tmp_path / 'run'),
        '--cfg-options',
        *tiny_digits_options(digits_root, epochs=1),
        f'model.head.num_classes={classes}',
    ]
    proc = run_tool(args, cwd=REPO, check=False)
    assert proc.returncode != 0
    assert (
        f'model.head.num_classes is {classes}, but the train data has 10 classes' in proc.stderr
    ), proc.stderr[-3000:]
    assert 'set model.head.num_classes=10' in proc.stderr
    assert 'Epoch(train)' not in proc.stdout + proc.stderr  # nothing trained
    assert not list((tmp_path / 'run').glob('*.pth'))


def test_detector_and_segmentor_heads_are_read():
    from types import SimpleNamespace

    from mmwst.engine import check_classes

    seg = SimpleNamespace(
        decode_head=SimpleNamespace(num_classes=4), auxiliary_head=SimpleNamespace(num_classes=3)
    )
    data = SimpleNamespace(metainfo=dict(classes=('bg', 'a', 'b', 'c')))
    with pytest.raises(ValueError, match='model.auxiliary_head.num_classes is 3.*has 4 classes'):
        check_classes(seg, {'val': data})
    det = SimpleNamespace(
        roi_head=SimpleNamespace(
            bbox_head=[SimpleNamespace(num_classes=3)] * 2 + [SimpleNamespace(num_classes=4)]
        )
    )
    with pytest.raises(ValueError, match=r'model.roi_head.bbox_head\[2\].num_classes is 4'):
        check_classes(det, {'train': SimpleNamespace(metainfo=dict(classes=('a', 'b', 'c')))})
