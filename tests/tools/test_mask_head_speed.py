"""tools/mask_head_speed.py: mmdet's mask head and the matrix-product one timed in turns,
with the ratio, after checking that they agree."""

import os.path as osp
import re

import pytest

from tests.helpers import REPO, TOOLS, run_tool

pytest.importorskip('mmdet')


def test_prints_both_times_and_their_ratio_for_both_passes():
    proc = run_tool(
        [osp.join(TOOLS, 'mask_head_speed.py'), '--repeats', '1', '--rois', '4', '--width', '8'],
        cwd=REPO,
    )
    rows = re.findall(
        r'^\s*(forward|backward)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$', proc.stdout, flags=re.M
    )
    assert [r[0] for r in rows] == ['forward', 'backward'], proc.stdout
    assert all(float(ratio) > 0 for *_, ratio in rows)
