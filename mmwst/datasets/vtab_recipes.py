"""Per-task VTAB-1k hyperparameters released with the papers' reference code.

Configs read them at parse time, so that choosing the task (``VTAB_TASK=dtd``) also
applies the method's released settings for that task::

    from mmwst.datasets.vtab_recipes import vtab_recipe
    _recipe = vtab_recipe('rlrr', '{{$VTAB_TASK:cifar}}', lr=3e-3, drop_path=0.1,
                          weight_decay=5e-5, hflip=False)

Tasks without a released setting (a generated task, or WST's untuned tasks) keep the
defaults given by the config.
"""

from __future__ import annotations

from .vtab import EXTRA_TASKS, canonical_task

#: RLRR: task -> (lr, drop_path, weight_decay, hflip)
RLRR: dict[str, tuple[float, float, float, bool]] = {
    'caltech101': (1e-3, 0.1, 5e-5, False), 'cifar': (3e-3, 0.1, 5e-5, False),
    'dtd': (2e-3, 0.1, 5e-5, True), 'oxford_flowers102': (3e-3, 0.3, 5e-2, False),
    'oxford_iiit_pet': (1e-3, 0.1, 5e-5, True), 'svhn': (5e-3, 0.3, 5e-5, False),
    'sun397': (1e-3, 0.1, 5e-5, False), 'patch_camelyon': (3e-3, 0.3, 5e-2, True),
    'eurosat': (1e-3, 0.1, 5e-5, True), 'resisc45': (3e-3, 0.0, 5e-5, False),
    'diabetic_retinopathy': (5e-3, 0.1, 5e-5, True), 'clevr_count': (5e-3, 0.5, 5e-5, True),
    'clevr_dist': (1e-2, 0.2, 5e-5, True), 'dmlab': (5e-3, 0.3, 5e-5, True),
    'kitti': (3e-3, 0.3, 5e-2, True), 'dsprites_loc': (1e-2, 0.1, 5e-5, False),
    'dsprites_ori': (5e-3, 0.1, 5e-5, False), 'smallnorb_azi': (5e-3, 0.3, 5e-2, False),
    'smallnorb_ele': (1e-3, 0.3, 5e-5, True),
}  # yapf: disable
#: HST: task -> (lr, weight_decay, drop_path)
HST: dict[str, tuple[float, float, float]] = {
    'cifar': (1e-2, 5e-4, 0.0), 'caltech101': (1e-3, 5e-4, 0.1), 'dtd': (1e-2, 5e-4, 0.0),
    'oxford_flowers102': (1e-3, 5e-5, 0.0), 'oxford_iiit_pet': (1e-2, 5e-4, 0.0),
    'svhn': (1e-2, 5e-5, 0.1), 'sun397': (1e-2, 5e-5, 0.0),
    'patch_camelyon': (5e-3, 5e-4, 0.1), 'eurosat': (1e-3, 5e-4, 0.1),
    'resisc45': (5e-3, 5e-4, 0.0), 'diabetic_retinopathy': (1e-3, 5e-5, 0.1),
    'clevr_count': (1e-3, 5e-4, 0.1), 'clevr_dist': (5e-3, 5e-4, 0.1),
    'dmlab': (5e-3, 5e-4, 0.1), 'kitti': (5e-3, 5e-2, 0.1), 'dsprites_loc': (5e-3, 5e-4, 0.1),
    'dsprites_ori': (1e-3, 5e-4, 0.1), 'smallnorb_azi': (1e-3, 5e-4, 0.1),
    'smallnorb_ele': (1e-3, 5e-2, 0.2),
}  # yapf: disable
#: WST (released for two tasks only): task -> (lr, drop_path, scale s)
WST: dict[str, tuple[float, float, float]] = {
    'caltech101': (1e-3, 0.0, 10.0),
    'dtd': (8e-4, 0.3, 0.1),
}
_FIELDS = {
    'rlrr': (RLRR, ('lr', 'drop_path', 'weight_decay', 'hflip')),
    'hst': (HST, ('lr', 'weight_decay', 'drop_path')),
    'wst': (WST, ('lr', 'drop_path', 'scale')),
}


def vtab_recipe(method: str, task: str, **defaults) -> dict:
    """``defaults`` updated with ``method``'s released settings for ``task``.

    Also holds ``task`` (the canonical name) and ``released`` (whether the method
    published settings for this task).
    """
    if method not in _FIELDS:
        raise ValueError(f'no released VTAB-1k settings for {method!r}; known: {sorted(_FIELDS)}')
    name = task if task in EXTRA_TASKS else canonical_task(task)
    table, fields = _FIELDS[method]
    recipe = dict(defaults, task=name, released=name in table)
    if name in table:
        recipe.update(zip(fields, table[name]))
    return recipe
