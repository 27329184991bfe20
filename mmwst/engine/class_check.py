"""Check, before a run starts, that the model's heads predict as many classes as the data has.

A classification head with fewer outputs than the data's classes crashes at the first
iteration with ``Target 6 is out of bounds``; one with more outputs trains silently,
wasting logits and shifting the softmax. :class:`CheckClassesHook` compares every head
it knows (mmpretrain's classification heads, mmdet's RoI and RPN-free heads, mmseg's
decode and auxiliary heads) with the class count of every dataset the run uses, and
stops with the config key to set.
"""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS


def _heads(model) -> list[tuple[str, int]]:
    """``(config key, num_classes)`` of the class-predicting heads of ``model``."""
    found = []
    head = getattr(model, 'head', None)
    if head is not None and hasattr(head, 'num_classes'):
        found.append(('model.head.num_classes', int(head.num_classes)))
    roi = getattr(model, 'roi_head', None)
    if roi is not None:
        bbox = getattr(roi, 'bbox_head', None)
        bboxes = list(bbox) if hasattr(bbox, '__len__') else [bbox] if bbox is not None else []
        for i, b in enumerate(bboxes):
            key = (
                f'model.roi_head.bbox_head[{i}]' if len(bboxes) > 1 else 'model.roi_head.bbox_head'
            )
            found.append((f'{key}.num_classes', int(b.num_classes)))
    for name in ('decode_head', 'auxiliary_head'):
        h = getattr(model, name, None)
        for i, part in enumerate(
            list(h) if hasattr(h, '__len__') else [h] if h is not None else []
        ):
            key = f'model.{name}[{i}]' if hasattr(h, '__len__') else f'model.{name}'
            found.append((f'{key}.num_classes', int(part.num_classes)))
    return found


def _dataset_classes(dataset) -> int | None:
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    return len(classes) if classes is not None else None


def check_classes(model, datasets: dict) -> None:
    """Raise ``ValueError`` where a head's class count differs from a dataset's.

    Args:
        model: The model (unwrapped).
        datasets (dict): ``{'train': dataset, ...}`` of the loaders the run uses.
    """
    for split, dataset in datasets.items():
        count = _dataset_classes(dataset)
        if count is None:
            continue
        for key, predicted in _heads(model):
            if predicted != count:
                raise ValueError(
                    f'{key} is {predicted}, but the {split} data has {count} classes '
                    f'({type(dataset).__name__}): set {key}={count} (with --cfg-options or in '
                    'the config), or point the config at the data the head was meant for'
                )


@HOOKS.register_module()
class CheckClassesHook(Hook):
    """Run :func:`check_classes` before training, validation and testing start.

    Examples:
        In a config: ``custom_hooks = [dict(type='mmwst.CheckClassesHook')]`` (every mmwst
        runtime lists it). What it checks:

        >>> from types import SimpleNamespace
        >>> from mmwst.engine import check_classes
        >>> model = SimpleNamespace(head=SimpleNamespace(num_classes=7))
        >>> data = SimpleNamespace(metainfo=dict(classes=[str(i) for i in range(10)]))
        >>> check_classes(model, {'train': data})
        Traceback (most recent call last):
        ...
        ValueError: model.head.num_classes is 7, but the train data has 10 classes ...
    """

    priority = 'VERY_HIGH'

    def _check(self, runner, splits) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        datasets = {}
        for split in splits:
            loader = getattr(runner, f'{split}_dataloader', None)
            dataset = getattr(loader, 'dataset', None)
            if dataset is not None:
                datasets[split] = dataset
        check_classes(model, datasets)

    def before_train(self, runner) -> None:
        self._check(runner, ('train',))

    def before_val(self, runner) -> None:
        self._check(runner, ('val',))

    def before_test(self, runner) -> None:
        self._check(runner, ('test',))
