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


def test_more_processes_than_cores_exit_cleanly(digits_root, tmp_path):
    """Four processes on two cores used to exit with SIGABRT about one run in three after
    training and saving ("terminate called without an active exception": gloo's group torn
    down while its threads ran); every process now waits and closes the group."""
    for attempt in range(3):
        work_dir = tmp_path / f'run{attempt}'
        proc = run_tool(
            [
                osp.join(TOOLS, 'dist_train.sh'),
                DEMO_CONFIG,
                '4',
                '--work-dir',
                str(work_dir),
                '--cfg-options',
                *tiny_digits_options(digits_root, epochs=1, train_images=64),
                'train_dataloader.batch_size=8',
            ],
            cwd=REPO,
            env=tool_env(PORT=str(free_port())),
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (work_dir / 'epoch_1.pth').is_file()
        assert 'terminate called' not in proc.stderr


@pytest.fixture(scope='module')
def tiny_shapes(tmp_path_factory) -> str:
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    root = str(tmp_path_factory.mktemp('shapes'))
    write_shapes_dataset(root, num_train=16, num_val=4, image_size=128, seed=0)
    return root


@pytest.mark.parametrize(
    ('config', 'options', 'checkpoint'),
    [
        pytest.param(
            'configs/demo/shapes_cascade_mask_rcnn.py',
            ['train_cfg.max_epochs=1', 'train_cfg.val_interval=100'],
            'epoch_1.pth',
            id='cascade_mask_rcnn',
        ),
        pytest.param(
            'configs/demo/shapes_upernet.py',
            [
                'train_cfg.max_iters=4',
                'train_cfg.val_interval=100',
                'default_hooks.checkpoint.interval=4',
            ],
            'iter_4.pth',
            id='upernet',
        ),
    ],
)
def test_dist_train_dense_demo_two_cpu_processes(
    tiny_shapes, tmp_path, config, options, checkpoint
):
    """The dense backbone under DDP (gloo, 2 CPU processes) in mmdet and in mmseg: both
    processes train, the frozen ViT stays out of the gradient sync, a checkpoint is written."""
    work_dir = tmp_path / 'dist'
    proc = run_tool(
        [
            osp.join(TOOLS, 'dist_train.sh'),
            config,
            '2',
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            'train_dataloader.batch_size=2',
            'log_level=INFO',
            *options,
        ],
        cwd=REPO,
        env=tool_env(PORT=str(free_port()), SHAPES_ROOT=tiny_shapes),
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    state = torch.load(work_dir / checkpoint, map_location='cpu', weights_only=True)
    # 16 images, 2 processes x batch 2 -> 4 iterations
    assert state['meta']['iter'] == 4
    weights = state['state_dict']
    assert any(k.startswith(('backbone.wst.', 'backbone.side.')) for k in weights)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_a_port_in_use_is_refused_with_the_fix(script, tmp_path):
    """torch used to fail with a bare EADDRINUSE; now: which port, and PORT= to change it."""
    import socket

    with socket.socket() as busy:
        busy.bind(('', 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ['configs/demo/digits_vit_tiny.py']
        if script == 'dist_test.sh':
            args.append(str(tmp_path / 'any.pth'))
        proc = run_tool(
            [osp.join(TOOLS, script), *args, '2'],
            cwd=REPO,
            env=tool_env(PORT=str(port)),
            check=False,
        )
    assert proc.returncode == 2
    assert f'port {port} is in use' in proc.stderr and f'PORT={port + 1}' in proc.stderr
