"""Fail at once, and say what to put where, when a config's data or weights are missing.

A COCO or ADE20K run builds a detector around a ViT-B, reads annotation files and loads
pretrained weights before it would notice that a path is wrong - and the error it then
shows names one file out of several. A config opts in to an early, complete check by
listing the hook::

    custom_hooks = [dict(type='mmwst.CheckPathsHook',
                         help='COCO 2017 from https://cocodataset.org into data/coco/')]

The paths are read from the config itself, so ``--cfg-options`` and environment
variables that move them are respected:

* every ``pretrained`` path and local ``Pretrained`` ``init_cfg`` checkpoint in ``model``,
  and ``load_from``;
* for each data loader that runs (train, val, test): the dataset's ``data_root``,
  ``ann_file`` and ``data_prefix`` folders (joined with ``data_root`` the way mmengine's
  ``BaseDataset`` does; wrappers such as ``RepeatDataset`` are followed), and the
  evaluator's ``ann_file`` (mmdet's ``CocoMetric``);
* the hook's extra ``paths``.

:func:`check_required_paths` runs the check on a loaded config (the entry points call it
before building anything); :class:`CheckPathsHook` runs it again in ``before_run`` for
runs started by mmdet's, mmseg's or mmengine's own tools.
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Iterable, Mapping, Sequence

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from ..registry import HOOKS

HOOK_NAME = 'CheckPathsHook'
LOADERS = ('train', 'val', 'test')


def _is_remote(path: str) -> bool:
    """``torchvision://``, ``open-mmlab://``, ``s3://``, URLs: not local files."""
    return '://' in path


def _find_hook(cfg: Mapping) -> Mapping | None:
    for hook in cfg.get('custom_hooks') or ():
        if isinstance(hook, Mapping) and str(hook.get('type', '')).split('.')[-1] == HOOK_NAME:
            return hook
    return None


def _model_paths(node, key: str) -> Iterable[tuple[str, str]]:
    """``(path, config key)`` of every local weight file named under ``node``."""
    if isinstance(node, Mapping):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, Mapping) and init_cfg.get('type') == 'Pretrained':
            checkpoint = init_cfg.get('checkpoint')
            if isinstance(checkpoint, str) and not _is_remote(checkpoint):
                yield checkpoint, f'{key}.init_cfg.checkpoint'
        for name, value in node.items():
            if name == 'pretrained' and isinstance(value, str) and not _is_remote(value):
                yield value, f'{key}.pretrained'
            elif isinstance(value, (Mapping, list, tuple)):
                yield from _model_paths(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _model_paths(value, f'{key}.{i}')


def _join(root: str | None, path: str) -> str:
    # mmengine's BaseDataset joins relative ann_file / data_prefix entries with data_root
    if root and not osp.isabs(path):
        return osp.join(root, path)
    return path


def _dataset_paths(dataset, key: str) -> Iterable[tuple[str, str]]:
    """``(path, config key)`` of the files and folders a dataset config reads."""
    if not isinstance(dataset, Mapping):
        return
    for wrapped in ('dataset', 'datasets'):  # RepeatDataset, ConcatDataset, ...
        inner = dataset.get(wrapped)
        if isinstance(inner, Mapping):
            yield from _dataset_paths(inner, f'{key}.{wrapped}')
        elif isinstance(inner, (list, tuple)):
            for i, item in enumerate(inner):
                yield from _dataset_paths(item, f'{key}.{wrapped}.{i}')
    root = dataset.get('data_root')
    found = False
    ann_file = dataset.get('ann_file')
    if isinstance(ann_file, str) and ann_file and not _is_remote(ann_file):
        yield _join(root, ann_file), f'{key}.ann_file'
        found = True
    prefix = dataset.get('data_prefix')
    if isinstance(prefix, Mapping):
        for name, value in prefix.items():
            if isinstance(value, str) and not _is_remote(value):
                yield _join(root, value) if value else root or '.', f'{key}.data_prefix.{name}'
                found = True
    if not found and isinstance(root, str) and root and not _is_remote(root):
        yield root, f'{key}.data_root'


def _evaluator_paths(evaluator, key: str) -> Iterable[tuple[str, str]]:
    if isinstance(evaluator, (list, tuple)):
        for i, item in enumerate(evaluator):
            yield from _evaluator_paths(item, f'{key}.{i}')
    elif isinstance(evaluator, Mapping):
        ann_file = evaluator.get('ann_file')
        if isinstance(ann_file, str) and ann_file and not _is_remote(ann_file):
            yield ann_file, f'{key}.ann_file'


def required_paths(
    cfg: Mapping, loaders: Sequence[str] = LOADERS, extra: Sequence = ()
) -> list[tuple[str, str]]:
    """Every local path a run of ``cfg`` reads, as ``(path, where it is set)``.

    Args:
        cfg: a loaded mmengine config.
        loaders: which of ``'train'``, ``'val'``, ``'test'`` will run.
        extra: more paths: strings, or dicts ``dict(path=..., what=...)``.
    """
    unknown = set(loaders) - set(LOADERS)
    if unknown:
        raise ValueError(f'loaders must be taken from {LOADERS}, got {sorted(unknown)}')
    found = list(_model_paths(cfg.get('model') or {}, 'model'))
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and load_from and not _is_remote(load_from):
        found.append((load_from, 'load_from'))
    for name in loaders:
        loader = cfg.get(f'{name}_dataloader')
        if isinstance(loader, Mapping):
            found += _dataset_paths(loader.get('dataset'), f'{name}_dataloader.dataset')
            if name != 'train':
                found += _evaluator_paths(cfg.get(f'{name}_evaluator'), f'{name}_evaluator')
    for item in extra:
        if isinstance(item, str):
            found.append((item, 'CheckPathsHook.paths'))
        elif isinstance(item, Mapping) and isinstance(item.get('path'), str):
            found.append((item['path'], item.get('what', 'CheckPathsHook.paths')))
        else:
            raise TypeError(
                f'CheckPathsHook paths must be strings or dict(path=..., what=...), got {item!r}'
            )
    unique: dict[str, str] = {}
    for path, where in found:
        unique.setdefault(osp.normpath(osp.expanduser(path)), where)
    return list(unique.items())


def _raise_if_missing(paths: Sequence[tuple[str, str]], help_text: str | None) -> None:
    missing = [(path, where) for path, where in paths if not osp.exists(path)]
    if not missing:
        return
    width = max(len(path) for path, _ in missing)
    lines = [f'  {path:<{width}}  (set by {where})' for path, where in missing]
    message = [
        f'this run needs {len(missing)} path(s) that do not exist (relative to {os.getcwd()}):',
        *lines,
    ]
    if help_text:
        message += ['', help_text.strip()]
    message += [
        '',
        'Put them there, or point the config at them, e.g. '
        f'--cfg-options {missing[0][1]}=PATH (nothing is downloaded at run time).',
    ]
    raise FileNotFoundError('\n'.join(message))


def check_required_paths(cfg: Mapping, loaders: Sequence[str] = LOADERS) -> None:
    """Raise ``FileNotFoundError`` listing every missing path of ``cfg`` at once.

    Does nothing unless the config lists ``mmwst.CheckPathsHook`` in ``custom_hooks``
    (its ``paths`` and ``help`` are used). Cheap: only ``os.path.exists`` calls.

    Args:
        cfg: a loaded config, after command-line overrides.
        loaders: the data loaders the run uses. Defaults to all three.
    """
    hook = _find_hook(cfg)
    if hook is None:
        return
    paths = required_paths(cfg, loaders, extra=hook.get('paths') or ())
    _raise_if_missing(paths, hook.get('help'))


@HOOKS.register_module()
class CheckPathsHook(Hook):
    """Stop a run before the weights load when its data or checkpoints are missing.

    Listing this hook in ``custom_hooks`` opts a config in to the check (see the module
    docstring for what is checked); :func:`check_required_paths` performs the same check
    on the config before the runner exists. Here, in ``before_run``, only the loops the
    runner is about to run are checked (``tools/test.py`` needs no training data).

    Args:
        paths (Sequence[str | dict]): Extra paths, as strings or
            ``dict(path=..., what=...)``. Defaults to none.
        help (str, optional): Where to get the data and weights; appended to the error.

    Examples:
        >>> from mmengine.config import Config
        >>> from mmwst.engine import check_required_paths
        >>> cfg = Config(dict(
        ...     model=dict(backbone=dict(pretrained='weights/ViT-B_16.npz')),
        ...     custom_hooks=[dict(type='mmwst.CheckPathsHook', help='Put the file there.')]))
        >>> check_required_paths(cfg, loaders=())
        Traceback (most recent call last):
        ...
        FileNotFoundError: ...weights/ViT-B_16.npz...
    """

    priority = 'VERY_HIGH'

    def __init__(self, paths: Sequence = (), help: str | None = None) -> None:
        self.paths = list(paths)
        self.help = help
        required_paths({}, loaders=(), extra=self.paths)  # validates the entries early

    def before_run(self, runner) -> None:
        loaders = [
            name for name in LOADERS if isinstance(getattr(runner, f'_{name}_loop', None), BaseLoop)
        ]
        cfg = runner.cfg if runner.cfg is not None else {}
        _raise_if_missing(required_paths(cfg, loaders, extra=self.paths), self.help)
