"""tools/dist_train.sh trains with 2 CPU processes (torchrun, gloo picked automatically)."""

import os.path as osp

import pytest
import torch

from tests.helpers import (
    DEMO_CONFIG,
    REPO,
    TOOLS,
    free_port,
    run_tool,
    tiny_digits_options,
    tool_env,
)

pytestmark = pytest.mark.slow


def test_dist_train_two_cpu_processes(digits_root, tmp_path):
    work_dir = tmp_path / 'dist'
    proc = run_tool(
        [
            osp.join(TOOLS, 'dist_train.sh'),
            DEMO_CONFIG,
            '2',
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            *tiny_digits_options(digits_root, epochs=1, train_images=64),
        ],
        cwd=REPO,
        env=tool_env(PORT=str(free_port())),
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert "'backend': 'gloo'" in log or 'backend=gloo' in log or "backend='gloo'" in log
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)
    # 64 images, 2 processes x batch 16 -> 2 iterations per epoch
    assert checkpoint['meta']['iter'] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint['state_dict'].values())
