"""A run that diverges stops at once, says where, and keeps its good checkpoints."""

import os.path as osp

import pytest
import torch

from tests.helpers import DEMO_CONFIG, REPO, TOOLS, run_tool, tiny_digits_options

pytestmark = pytest.mark.slow


def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(digits_root, tmp_path):
    """Two sane epochs (two checkpoints, one kept), then the lr jumps by 1e9: the run must
    stop at the first non-finite loss, exit non-zero with the iteration, the last finite
    loss, the lr and the good checkpoint, and that checkpoint must survive, finite."""
    work = tmp_path / 'run'
    config = tmp_path / 'diverging.py'
    config.write_text(
        f'_base_ = [{DEMO_CONFIG!r}]\n'
        'param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[2], gamma=1e9)]\n'
    )
    args = [
        osp.join(TOOLS, 'train.py'),
        str(config),
        '--work-dir',
        str(work),
        '--cfg-options',
        *tiny_digits_options(digits_root, epochs=4),
        'default_hooks.checkpoint.max_keep_ckpts=1',
    ]
    proc = run_tool(args, cwd=REPO, check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'training diverged at iteration' in err and 'epoch 3' in err, err[-2000:]
    assert 'the last finite loss was' in err and 'at lr 1e+06' in err
    good = work / 'epoch_2.pth'
    assert f'the last good checkpoint is {good}' in err
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_2.pth']
    state = torch.load(good, map_location='cpu', weights_only=True)['state_dict']
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_non_finite_weights_are_never_written():
    from types import SimpleNamespace

    from mmwst.engine import DivergedError, DivergenceGuardHook

    hook = DivergenceGuardHook()
    runner = SimpleNamespace(iter=9, epoch=0, work_dir='/nonexistent', optim_wrapper=None)
    good = {'state_dict': {'w': torch.ones(2), 'steps': torch.tensor(3)}}
    hook.before_save_checkpoint(runner, good)  # finite: nothing happens
    bad = {'state_dict': {'w': torch.tensor([1.0, float('nan')]), 'b': torch.zeros(1)}}
    with pytest.raises(DivergedError, match=r'1 weights are not finite \(w\).*Nothing was written'):
        hook.before_save_checkpoint(runner, bad)
