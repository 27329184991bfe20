"""Checkpoints that load with ``torch.load(weights_only=True)``.

mmengine 0.10 writes its message hub into every training checkpoint as pickled
Python objects (``HistoryBuffer`` instances holding numpy arrays, with references to
their statistics methods). Since torch 2.6, ``torch.load`` refuses such objects by
default (``weights_only=True``), so mmengine cannot resume its own checkpoints.

mmwst fixes this at the source instead of weakening the loader:

* :class:`SafeCheckpointHook` rewrites the checkpoint before it is written so that it
  contains only tensors and plain containers (``HistoryBuffer`` -> a tagged dict of
  tensors, ``numpy`` arrays -> tagged tensors, numpy scalars -> Python numbers), and
  restores the original objects after a checkpoint is read.
* :func:`load_local_checkpoint` loads local files. It always calls
  ``torch.load(..., weights_only=True)`` - on every torch version, also those whose
  default is still ``False`` - and turns a refusal into an error that says why and how to
  convert a file you trust (``tools/sanitize_checkpoint.py``). mmengine uses it for
  local paths inside :func:`safe_loading` only: mmwst's runner
  (:class:`~mmwst.engine.CheckedRunner`) and tools enter it while they load, and
  ``import mmwst`` leaves mmengine's loader as it was for every other model in the
  process. :func:`register_safe_loader` makes the swap for the whole process, for
  those who want it.

Nothing is ever unpickled with ``weights_only=False`` except by that explicit,
opt-in tool.
"""

from __future__ import annotations

import contextlib
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..registry import HOOKS

_NDARRAY = '__mmwst_ndarray__'
_HISTORY = '__mmwst_history_buffer__'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled Python objects that ``weights_only`` refuses."""


class DamagedCheckpointError(RuntimeError):
    """A checkpoint file is incomplete or corrupt."""


def to_weights_only(obj: Any, strict: bool = True) -> Any:
    """Return a copy of ``obj`` that ``torch.load(weights_only=True)`` accepts.

    Tensors, numbers, strings, ``None`` and (ordered) dicts, lists and tuples pass
    through; mmengine ``HistoryBuffer`` objects and numpy arrays become tagged dicts
    (reversed by :func:`from_weights_only`); numpy scalars become Python numbers.
    Any other object raises ``TypeError`` when ``strict``, else becomes ``str(obj)``.
    """
    if isinstance(obj, np.generic):  # before the primitives: np.float64 subclasses float
        return obj.item()
    if (
        isinstance(obj, torch.Tensor)
        or obj is None
        or isinstance(obj, (bool, int, float, str, bytes, complex))
    ):
        return obj
    if isinstance(obj, HistoryBuffer):
        return {
            _HISTORY: dict(
                log_history=to_weights_only(obj._log_history),
                count_history=to_weights_only(obj._count_history),
                max_length=int(obj.max_length),
            )
        }
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            if strict:
                raise TypeError(
                    'cannot store a numpy array of Python objects in a weights-only checkpoint'
                )
            return str(obj)
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, to_weights_only(v, strict)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: to_weights_only(v, strict) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_weights_only(v, strict) for v in obj]
    if isinstance(obj, tuple):  # namedtuples become plain tuples
        return tuple(to_weights_only(v, strict) for v in obj)
    if isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return obj
    if strict:
        raise TypeError(
            f'cannot store an object of type {type(obj).__qualname__} in a '
            'weights-only checkpoint; store tensors, numbers, strings and '
            'containers of them'
        )
    return str(obj)


def from_weights_only(obj: Any) -> Any:
    """Reverse :func:`to_weights_only`: rebuild ``HistoryBuffer`` and numpy arrays."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _NDARRAY in obj:
            # loaded with map_location='cuda' (a resume on the GPU) the tensor is there
            return obj[_NDARRAY].cpu().numpy()
        if len(obj) == 1 and _HISTORY in obj:
            state = obj[_HISTORY]
            return HistoryBuffer(
                from_weights_only(state['log_history']),
                from_weights_only(state['count_history']),
                state['max_length'],
            )
        return type(obj)((k, from_weights_only(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [from_weights_only(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_weights_only(v) for v in obj)
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Keep training checkpoints loadable with ``torch.load(weights_only=True)``.

    Converts the checkpoint in place before it is written (see
    :func:`to_weights_only`) and back after it is read, so resuming restores the
    message hub exactly. ``tools/train.py`` adds this hook to every config.

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from mmwst.engine import from_weights_only, to_weights_only
        >>> state = {'history': np.arange(3.0), 'lr': np.float64(0.5)}
        >>> safe = to_weights_only(state)  # tensors and plain containers only
        >>> safe['lr'], isinstance(safe['history']['__mmwst_ndarray__'], torch.Tensor)
        (0.5, True)
        >>> from_weights_only(safe)['history']
        array([0., 1., 2.])
    """

    priority = 'LOWEST'  # after every other hook has added its part

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key != 'state_dict':  # tensors already; skip the big walk
                checkpoint[key] = to_weights_only(checkpoint[key], strict=key != 'meta')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key != 'state_dict':
                checkpoint[key] = from_weights_only(checkpoint[key])


def load_local_checkpoint(filename: str, map_location=None) -> Any:
    """Load a local checkpoint with ``weights_only=True``; explain any refusal."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint file {filename!r} does not exist; pass the path '
            'of a local .pth file (nothing is downloaded at run time)'
        )
    try:
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'{filename} holds pickled Python objects besides tensors, so it was not '
            'loaded: unpickling arbitrary objects can run arbitrary code, and mmwst '
            'always loads with torch.load(weights_only=True). Checkpoints written by '
            'mmwst never need more. If you trust where this file came from, convert it '
            'once with\n    python tools/sanitize_checkpoint.py '
            f'{filename} SAFE_COPY.pth --trust-source\nand use SAFE_COPY.pth.\n'
            f'torch said: {str(err).splitlines()[0]}'
        ) from err
    except (RuntimeError, EOFError, OSError) as err:  # a file cut short or overwritten
        raise DamagedCheckpointError(
            f'{filename} is damaged and cannot be read (a copy cut short, a full disk or a '
            f'run killed while writing it?); use another checkpoint. torch said: '
            f'{str(err).splitlines()[0] if str(err) else type(err).__name__}'
        ) from err
    return from_weights_only(checkpoint)


def checkpoint_is_intact(path: str) -> bool:
    """Cheap test that a torch checkpoint is complete: a zip archive whose directory (at
    the end of the file) reads. A file cut short fails it; nothing is unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def register_safe_loader() -> None:
    """Make mmengine load every local file through :func:`load_local_checkpoint`, in the
    whole process from now on (opt-in: ``import mmwst`` does not call it)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


@contextlib.contextmanager
def safe_loading() -> Iterator[None]:
    """Within the block, mmengine loads local checkpoints through
    :func:`load_local_checkpoint`; on leaving it (also by an exception), the loader that
    was there before is back. Blocks may nest.

    Examples:
        >>> from mmengine.runner.checkpoint import CheckpointLoader
        >>> before = CheckpointLoader._schemes['']
        >>> with safe_loading():
        ...     CheckpointLoader._schemes[''] is load_local_checkpoint
        True
        >>> CheckpointLoader._schemes[''] is before
        True
    """
    before = CheckpointLoader._schemes.get('')
    CheckpointLoader._schemes[''] = load_local_checkpoint
    try:
        yield
    finally:  # the table as it is now: registering a scheme replaces the dict
        if before is None:
            CheckpointLoader._schemes.pop('', None)
        else:
            CheckpointLoader._schemes[''] = before
