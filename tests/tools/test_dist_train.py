"""tools/dist_train.sh trains with 2 CPU processes (torchrun, gloo picked automatically).

Every run here takes ``PORT=0``: torchrun's standalone rendezvous binds free ports and
holds them for the whole run, so no other program can take them in between. Every run
also checks, in each process, that the runner's DDP model was freed before the process
group was destroyed, while the interpreter was fully alive (``teardown_probe``).
"""

import json
import os
import os.path as osp

import pytest
import torch

from tests.helpers import (
    DEMO_CONFIG,
    REPO,
    TOOLS,
    run_tool,
    tiny_digits_options,
    tool_env,
)

pytestmark = pytest.mark.slow

HELPERS = osp.join(osp.dirname(osp.abspath(__file__)), 'helpers')


def probed(config: str, tmp_path) -> tuple[str, dict]:
    """A config that adds ``teardown_probe`` to ``config``, and the environment to run it
    with: free ports chosen by torchrun, the probe's records written under ``tmp_path``."""
    records = tmp_path / 'teardown'
    records.mkdir()
    path = tmp_path / f'probed_{osp.basename(config)}'
    path.write_text(
        f'_base_ = [{osp.join(REPO, config)!r}]\n'
        "custom_imports = dict(imports=['mmwst', 'teardown_probe'], "
        'allow_failed_imports=False)\n'
    )
    env = tool_env(PORT='0', TEARDOWN_RECORDS=str(records), PYTHONPATH=HELPERS + os.pathsep + REPO)
    return str(path), env


def assert_clean_teardown(tmp_path, world_size: int) -> None:
    """Each process destroyed the group itself, after its DDP model had been freed.

    A DDP model alive at that point (waiting for the cyclic collector inside the runner's
    reference cycles) is freed later, at the latest while the interpreter shuts down;
    its gloo work objects freed then aborted whole runs ("terminate called without an
    active exception") about one time in three with four processes on two cores."""
    records = {p.name: json.loads(p.read_text()) for p in (tmp_path / 'teardown').iterdir()}
    expected = {f'rank{rank}.json' for rank in range(world_size)}
    assert set(records) == expected, f'ranks that destroyed the group while running: {records}'
    for name, record in records.items():
        assert record['ddp_made'] >= 1, (name, record)  # the probe saw the model made
        assert record['ddp_alive'] == 0 and not record['finalizing'], (name, record)


def test_dist_train_two_cpu_processes(digits_root, tmp_path):
    config, env = probed(DEMO_CONFIG, tmp_path)
    work_dir = tmp_path / 'dist'
    proc = run_tool(
        [
            osp.join(TOOLS, 'dist_train.sh'),
            config,
            '2',
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            *tiny_digits_options(digits_root, epochs=1, train_images=64),
        ],
        cwd=REPO,
        env=env,
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert "'backend': 'gloo'" in log or 'backend=gloo' in log or "backend='gloo'" in log
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)
    # 64 images, 2 processes x batch 16 -> 2 iterations per epoch
    assert checkpoint['meta']['iter'] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint['state_dict'].values())
    assert_clean_teardown(tmp_path, world_size=2)
    assert 'terminate called' not in proc.stderr


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
    shapes_root, tmp_path, config, options, checkpoint
):
    """The dense backbone under DDP (gloo, 2 CPU processes) in mmdet and in mmseg: both
    processes train, the frozen ViT stays out of the gradient sync, a checkpoint is written."""
    probed_config, env = probed(config, tmp_path)
    env['SHAPES_ROOT'] = shapes_root
    work_dir = tmp_path / 'dist'
    proc = run_tool(
        [
            osp.join(TOOLS, 'dist_train.sh'),
            probed_config,
            '2',
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            'train_dataloader.batch_size=2',
            'log_level=INFO',
            *options,
        ],
        cwd=REPO,
        env=env,
    )
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    state = torch.load(work_dir / checkpoint, map_location='cpu', weights_only=True)
    # 16 images, 2 processes x batch 2 -> 4 iterations
    assert state['meta']['iter'] == 4
    weights = state['state_dict']
    assert any(k.startswith(('backbone.wst.', 'backbone.side.')) for k in weights)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert_clean_teardown(tmp_path, world_size=2)


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


def test_port_zero_is_for_one_machine(tmp_path):
    """PORT=0 (torchrun's standalone rendezvous) cannot span machines: refused, saying so."""
    proc = run_tool(
        [osp.join(TOOLS, 'dist_train.sh'), DEMO_CONFIG, '2'],
        cwd=REPO,
        env=tool_env(PORT='0', NNODES='2'),
        check=False,
    )
    assert proc.returncode == 2
    assert 'PORT=0' in proc.stderr and 'one machine only' in proc.stderr


@pytest.fixture
def fake_python(tmp_path):
    """An interpreter stand-in for the launch scripts: it accepts the port check (a script
    on stdin) without binding anything, and writes torchrun's command line to a file."""
    argv = tmp_path / 'argv.txt'
    fake = tmp_path / 'python'
    fake.write_text(
        '#!/usr/bin/env bash\n'
        'if [ "$1" = - ]; then cat >/dev/null; exit 0; fi\n'
        f'printf "%s\\n" "$@" > {str(argv)!r}\n'
    )
    fake.chmod(0o755)
    return str(fake), argv


@pytest.mark.parametrize(
    ('settings', 'rendezvous'),
    [
        pytest.param(
            {},
            ['--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1', '--master_port=29500'],
            id='default',
        ),
        pytest.param(
            dict(PORT='29612', NNODES='2', NODE_RANK='1', MASTER_ADDR='10.1.2.3'),
            ['--nnodes=2', '--node_rank=1', '--master_addr=10.1.2.3', '--master_port=29612'],
            id='several_machines',
        ),
        pytest.param(dict(PORT='0'), ['--standalone'], id='port_0'),
    ],
)
@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_the_port_settings_reach_torchrun(fake_python, script, settings, rendezvous):
    """PORT, NNODES, NODE_RANK and MASTER_ADDR become torchrun's rendezvous options
    (checked on the command line, so that no port is bound)."""
    python, argv = fake_python
    env = tool_env(PYTHON=python, **settings)
    for name in {'PORT', 'NNODES', 'NODE_RANK', 'MASTER_ADDR'} - set(settings):
        env.pop(name, None)
    args = [DEMO_CONFIG] + (['any.pth'] if script == 'dist_test.sh' else []) + ['3', '--x']
    run_tool([osp.join(TOOLS, script), *args], cwd=REPO, env=env)
    entry = osp.join(TOOLS, {'dist_train.sh': 'train.py', 'dist_test.sh': 'test.py'}[script])
    assert argv.read_text().splitlines() == [
        '-m',
        'torch.distributed.run',
        *rendezvous,
        '--nproc_per_node=3',
        entry,
        *args[:-2],
        '--launcher',
        'pytorch',
        '--x',
    ]
