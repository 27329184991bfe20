"""tools/roi_align_speed.py: both RoIAlign implementations timed side by side, with the
ratio, after checking that they agree."""

import os.path as osp
import re

import pytest

from tests.helpers import REPO, TOOLS, run_tool

pytest.importorskip('mmcv.ops')


def test_prints_both_times_and_their_ratio_for_boxes_and_masks():
    proc = run_tool(
        [osp.join(TOOLS, 'roi_align_speed.py'), '--repeats', '1', '--map', '8', '--rois', '12'],
        cwd=REPO,
    )
    rows = re.findall(
        r'^\s*(\d+)x(\d+)\s+(forward|backward)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$',
        proc.stdout,
        flags=re.M,
    )
    assert [(r[0], r[2]) for r in rows] == [
        ('7', 'forward'),
        ('7', 'backward'),
        ('14', 'forward'),
        ('14', 'backward'),
    ], proc.stdout
    assert all(float(ratio) > 0 for *_, ratio in rows)
