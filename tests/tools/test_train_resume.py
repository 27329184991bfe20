"""tools/train.py and tools/test.py end to end: train, kill, resume, evaluate.

A run killed after epoch 1 and resumed with --resume must end with exactly the
weights, optimizer state and schedule of an uninterrupted run (seeded, deterministic).
"""

import json
import os
import os.path as osp

import pytest
import torch

from tests.helpers import DEMO_CONFIG, REPO, TOOLS, run_tool, tiny_digits_options, tool_env
from tests.training_logs import SCORED_METRICS, last_validation, write_scored_config

HELPERS = osp.join(osp.dirname(osp.abspath(__file__)), 'helpers')
pytestmark = pytest.mark.slow


def _train(work_dir, data_root, *extra, env=None, check=True, config=DEMO_CONFIG):
    args = [
        osp.join(TOOLS, 'train.py'),
        config,
        '--work-dir',
        str(work_dir),
        *extra,
        '--cfg-options',
        *tiny_digits_options(data_root),
    ]
    return run_tool(args, cwd=REPO, env=env, check=check)


@pytest.fixture(scope='module')
def runs(digits_root, tmp_path_factory):
    base = tmp_path_factory.mktemp('resume')
    straight, resumed = base / 'straight', base / 'resumed'
    # the demo config, validated with the accuracy and the mAP of the scores
    config = write_scored_config(base / 'scored.py', DEMO_CONFIG)
    _train(straight, digits_root, config=config)

    killer = base / 'killed_after_epoch_1.py'
    killer.write_text(
        f'_base_ = [{config!r}]\n'
        "custom_imports = dict(imports=['mmwst', 'kill_hook'])\n"
        "custom_hooks = [dict(type='KillAfterEpochHook', epoch=1)]\n"
    )
    killed = run_tool(
        [
            osp.join(TOOLS, 'train.py'),
            str(killer),
            '--work-dir',
            str(resumed),
            '--cfg-options',
            *tiny_digits_options(digits_root),
        ],
        cwd=REPO,
        env=tool_env(PYTHONPATH=HELPERS + os.pathsep + REPO),
        check=False,
    )
    resume = _train(resumed, digits_root, '--resume', config=config)
    return dict(config=config, straight=straight, resumed=resumed, killed=killed, resume=resume)


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_the_interrupted_run_was_really_killed(runs):
    assert runs['killed'].returncode == -9
    assert osp.isfile(runs['resumed'] / 'epoch_1.pth')
    assert 'resumed epoch: 1' in runs['resume'].stdout + runs['resume'].stderr


def test_resumed_run_ends_with_identical_weights_and_state(runs):
    a = _load(runs['straight'] / 'epoch_2.pth')
    b = _load(runs['resumed'] / 'epoch_2.pth')
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    for pid, state in a['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(value, b['optimizer']['state'][pid][name]), (pid, name)
    assert a['param_schedulers'] == b['param_schedulers']
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2


def test_checkpoints_load_with_plain_weights_only(runs):
    checkpoint = _load(runs['resumed'] / 'epoch_1.pth')  # raises if anything is pickled
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(checkpoint)


def test_test_tool_evaluates_the_resumed_checkpoint(runs, digits_root, tmp_path):
    out = tmp_path / 'metrics.json'
    run_tool(
        [
            osp.join(TOOLS, 'test.py'),
            runs['config'],
            str(runs['resumed'] / 'epoch_2.pth'),
            '--work-dir',
            str(tmp_path / 'test'),
            '--out',
            str(out),
            '--cfg-options',
            *tiny_digits_options(digits_root),
        ],
        cwd=REPO,
    )
    # the figures of the resumed training's own validation after epoch 2 (the same
    # images: test_dataloader is val_dataloader; the same thread count), which are those
    # of the uninterrupted run, whose weights are the same
    resumed = last_validation(runs['resumed'], 'accuracy/top1')
    straight = last_validation(runs['straight'], 'accuracy/top1')
    assert resumed['step'] == straight['step'] == 2, (resumed, straight)
    validated = {k: resumed[k] for k in SCORED_METRICS}
    assert validated == {k: straight[k] for k in SCORED_METRICS}
    assert json.loads(out.read_text()) == validated


def test_missing_resume_file_is_a_clear_error(digits_root, tmp_path):
    proc = _train(tmp_path, digits_root, '--resume', str(tmp_path / 'absent.pth'), check=False)
    assert proc.returncode != 0
    assert 'absent.pth: no such checkpoint file' in proc.stderr


def _copy_run(source, target):
    """A copy of a finished run's folder whose last_checkpoint points inside it."""
    import shutil

    shutil.copytree(source, target)
    for marker in target.glob('last_checkpoint'):
        marker.write_text(str(target / osp.basename(marker.read_text().strip())))
    return target


def test_resume_auto_skips_a_damaged_latest_checkpoint(runs, digits_root, tmp_path):
    """A checkpoint cut short (killed copy, full disk): --resume auto names it and goes
    on from the newest intact one instead of failing inside torch."""
    work = _copy_run(runs['straight'], tmp_path / 'run')
    latest = work / 'epoch_2.pth'
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    proc = _train(work, digits_root, '--resume', 'auto')
    log = proc.stdout + proc.stderr
    assert f'{latest} is damaged (cut short?) and is skipped' in log
    assert f'resuming from {work / "epoch_1.pth"}' in log and 'resumed epoch: 1' in log


def test_resume_of_a_damaged_file_names_it_and_the_intact_ones(runs, digits_root, tmp_path):
    work = _copy_run(runs['straight'], tmp_path / 'run')
    damaged = work / 'epoch_2.pth'
    damaged.write_bytes(damaged.read_bytes()[:1000])
    proc = _train(tmp_path / 'other', digits_root, '--resume', str(damaged), check=False)
    assert proc.returncode != 0
    assert f'--resume {damaged}: the file is damaged' in proc.stderr
    assert f'intact checkpoints in the same folder, newest first: {work / "epoch_1.pth"}' in (
        proc.stderr
    )


def test_resume_auto_with_nothing_to_resume_says_it_starts_from_scratch(digits_root, tmp_path):
    proc = _train(tmp_path / 'fresh', digits_root, '--resume', 'auto')
    log = proc.stdout + proc.stderr
    assert 'no intact checkpoint in' in log and 'training starts from scratch' in log
    assert 'resumed from None' not in log and 'resumed epoch' not in log


def test_resume_says_when_the_checkpoint_lr_wins(runs, digits_root, tmp_path):
    work = _copy_run(runs['resumed'], tmp_path / 'run')
    (work / 'epoch_2.pth').unlink()  # resume after epoch 1, asking for another lr
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    proc = _train(
        work, digits_root, '--resume', 'auto', '--cfg-options', 'optim_wrapper.optimizer.lr=0.5'
    )
    log = proc.stdout + proc.stderr
    assert "resuming keeps the checkpoint's learning rate schedule (base lr 0.001)" in log
    assert "the config's lr 0.5 does not apply" in log
