"""Checkpoints stay loadable with torch.load(weights_only=True), and refusals explain."""

import itertools
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmwst.engine.checkpoint import (
    SafeCheckpointHook,
    UnsafeCheckpointError,
    from_weights_only,
    load_local_checkpoint,
    safe_loading,
    to_weights_only,
)
from tests.helpers import REPO, run_tool

_HUBS = itertools.count()


class Opaque:
    """Stands for any pickled Python object a foreign checkpoint may hold."""


def _mmengine_like_checkpoint():
    hub = MessageHub(f'mmwst-test-ckpt-{next(_HUBS)}')
    for value in (3.0, 2.0, 1.5):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 7)
    hub.update_info('np_scalar', np.float64(0.25), resumed=True)
    return {
        'meta': {'epoch': 1, 'iter': 7, 'seed': 0, 'dataset_meta': {'classes': ('a', 'b')}},
        'state_dict': {'w': torch.arange(6.0).reshape(2, 3)},
        'message_hub': hub.state_dict(),
        'optimizer': {'state': {0: {'step': torch.tensor(3.0)}}, 'param_groups': [{'lr': 0.1}]},
        'param_schedulers': [{'last_step': 7, 'base_values': [0.1]}],
    }


def test_raw_mmengine_checkpoint_is_refused_by_weights_only(tmp_path):
    """The problem being solved: mmengine's own checkpoints fail under torch >= 2.6."""
    path = tmp_path / 'raw.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_hook_makes_checkpoint_weights_only_and_restores_it(tmp_path):
    original = _mmengine_like_checkpoint()
    checkpoint = _mmengine_like_checkpoint()
    hook = SafeCheckpointHook()
    hook.before_save_checkpoint(None, checkpoint)
    path = tmp_path / 'safe.pth'
    torch.save(checkpoint, path)
    loaded = torch.load(path, weights_only=True)  # plain torch, no allow-list needed
    hook.after_load_checkpoint(None, loaded)

    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    ref = original['message_hub']['log_scalars']['train/loss']
    np.testing.assert_array_equal(buffer.data[0], ref.data[0])
    np.testing.assert_array_equal(buffer.data[1], ref.data[1])
    assert buffer.mean() == ref.mean() and buffer.max_length == ref.max_length
    assert loaded['message_hub']['runtime_info']['np_scalar'] == 0.25
    assert loaded['message_hub']['resumed_keys'] == original['message_hub']['resumed_keys']
    assert torch.equal(loaded['state_dict']['w'], original['state_dict']['w'])
    assert loaded['meta'] == original['meta']

    hub = MessageHub('mmwst-test-restored')
    hub.load_state_dict(loaded['message_hub'])
    assert hub.get_scalar('train/loss').current() == 1.5


def test_round_trip_keeps_numpy_dtypes_and_containers():
    obj = {
        'a': np.arange(5, dtype=np.int32),
        'b': [np.float32(2.5), (1, 'x')],
        'c': {'d': np.zeros((2, 2), dtype=np.float64)},
    }
    back = from_weights_only(to_weights_only(obj))
    assert back['a'].dtype == np.int32 and back['a'].tolist() == [0, 1, 2, 3, 4]
    assert back['b'] == [2.5, (1, 'x')]
    assert back['c']['d'].dtype == np.float64 and back['c']['d'].shape == (2, 2)


def test_unknown_objects_are_rejected_when_strict():
    with pytest.raises(TypeError, match='Opaque'):
        to_weights_only({'x': Opaque()})
    assert isinstance(to_weights_only({'x': Opaque()}, strict=False)['x'], str)


def test_loader_explains_refusal_and_missing_file(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {}, 'meta': {'obj': Opaque()}}, path)
    with pytest.raises(UnsafeCheckpointError, match='sanitize_checkpoint.py'):
        load_local_checkpoint(str(path))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_local_checkpoint(str(tmp_path / 'nope.pth'))


def test_mmengine_loads_through_the_safe_loader_inside_safe_loading(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    path = tmp_path / 'foreign.pth'
    torch.save({'meta': {'obj': Opaque()}}, path)
    with safe_loading():
        with pytest.raises(UnsafeCheckpointError):
            CheckpointLoader.load_checkpoint(str(path))
        with safe_loading():  # nested: still mmwst's, and still after the inner block
            pass
        assert CheckpointLoader._schemes[''] is load_local_checkpoint
    # outside, mmengine's own loader again (torch's refusal, not mmwst's), also after
    # the block was left by an exception
    assert CheckpointLoader._schemes[''] is load_from_local
    with pytest.raises(KeyError), safe_loading():
        raise KeyError('left by an exception')
    assert CheckpointLoader._schemes[''] is load_from_local
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(path))


def test_the_checked_runner_loads_through_the_safe_loader(tmp_path):
    from mmengine.model import BaseModel
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    from mmwst.engine import CheckedRunner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.linear(inputs)

    runner = CheckedRunner(model=Tiny(), work_dir=str(tmp_path / 'work'))
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {}, 'meta': {'obj': Opaque()}}, path)
    with pytest.raises(UnsafeCheckpointError, match='sanitize_checkpoint.py'):
        runner.load_checkpoint(str(path))
    with pytest.raises(UnsafeCheckpointError):
        runner.resume(str(path))
    assert CheckpointLoader._schemes[''] is load_from_local
    # an mmwst checkpoint loads, its state restored
    good = tmp_path / 'good.pth'
    weights = {'linear.weight': torch.eye(2), 'linear.bias': torch.ones(2)}
    torch.save({'state_dict': weights, 'meta': {}}, good)
    runner.load_checkpoint(str(good))
    torch.testing.assert_close(runner.model.linear.bias.data, torch.ones(2))


def test_import_mmwst_changes_nothing_for_a_plain_model(tmp_path):
    """In a fresh interpreter: mmengine's loader table is the same before and after
    ``import mmwst``, and a plain mmdet model loads through mmengine's own loader."""
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {}, 'meta': {'obj': Opaque()}}, path)
    code = f"""
import pickle, sys
sys.path.insert(0, {REPO!r})
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint, load_from_local
from mmdet.models.backbones import ResNet
before = dict(CheckpointLoader._schemes)
import mmwst
assert dict(CheckpointLoader._schemes) == before, 'import mmwst changed the loaders'
assert CheckpointLoader._schemes[''] is load_from_local
model = ResNet(depth=18)
try:
    load_checkpoint(model, {str(path)!r})
except pickle.UnpicklingError:
    print('mmengine refused it, as without mmwst')
"""
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'mmengine refused it, as without mmwst' in proc.stdout


def test_sanitize_tool_needs_trust_and_produces_a_loadable_copy(tmp_path):
    src, dst = tmp_path / 'raw.pth', tmp_path / 'clean.pth'
    torch.save(_mmengine_like_checkpoint(), src)
    tool = osp.join(REPO, 'tools', 'sanitize_checkpoint.py')
    refused = run_tool([tool, str(src), str(dst)], cwd=REPO, check=False)
    assert refused.returncode != 0 and '--trust-source' in refused.stderr
    assert not dst.exists()
    done = run_tool([tool, str(src), str(dst), '--trust-source'], cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    loaded = load_local_checkpoint(str(dst))
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
