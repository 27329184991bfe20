"""mmengine's Runner, checking the data and weight paths of what it is about to run.

The configs name it (``runner_type = 'mmwst.CheckedRunner'``), and every OpenMMLab entry
point honours ``runner_type`` - mmdet's, mmseg's and mmpretrain's own ``tools/train.py``
and ``tools/test.py`` as well as mmwst's - so a missing dataset or weight file stops the
run with the list of what is missing and where to get it (:class:`CheckPathsHook`'s
``help``), before the loops build their datasets: mmdet's COCO loader would otherwise fail
first with a bare ``pycocotools`` error.
"""

from __future__ import annotations

from mmengine.runner import Runner

from ..registry import RUNNERS
from .data_check import check_required_paths


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """:class:`mmengine.runner.Runner` that runs :func:`check_required_paths` for the
    loops of ``train()``, ``val()`` and ``test()`` before building them (a config without
    ``mmwst.CheckPathsHook`` is not checked).

    Examples:
        In a config (the mmwst runtimes do this): ``runner_type = 'mmwst.CheckedRunner'``.

        >>> from mmengine.registry import RUNNERS
        >>> from mmengine.runner import Runner
        >>> issubclass(RUNNERS.get('mmwst.CheckedRunner'), Runner)
        True
    """

    def train(self):
        loaders = ('train', 'val') if self._val_loop is not None else ('train',)
        check_required_paths(self.cfg, loaders)
        return super().train()

    def val(self):
        check_required_paths(self.cfg, ('val',))
        return super().val()

    def test(self):
        check_required_paths(self.cfg, ('test',))
        return super().test()
