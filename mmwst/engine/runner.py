"""mmengine's Runner, checking the data and weight paths of what it is about to run.

The configs name it (``runner_type = 'mmwst.CheckedRunner'``), and every OpenMMLab entry
point honours ``runner_type`` - mmdet's, mmseg's and mmpretrain's own ``tools/train.py``
and ``tools/test.py`` as well as mmwst's - so a missing dataset or weight file stops the
run with the list of what is missing and where to get it (:class:`CheckPathsHook`'s
``help``), before the loops build their datasets: mmdet's COCO loader would otherwise fail
first with a bare ``pycocotools`` error.

It also gives mmengine's ``compile`` option (``compile = True`` or a dict of
``torch.compile`` arguments, e.g. ``--cfg-options compile.backend=inductor``) a different
target: the model's backbone, compiled in place (``nn.Module.compile``, so checkpoints keep
their keys), instead of mmengine's ``train_step``, which would trace the optimizer step and
the logging with it and recompile again and again. On an H100 a compiled ViT-B/16 trains
1.39x (full fine-tuning) and 1.90x (LoRA) faster than the eager one (``docs/benchmark.md``).

While it trains, validates, tests, loads or resumes, mmengine reads local checkpoints
through mmwst's loader (``torch.load(weights_only=True)`` with errors that say what to do,
:func:`~mmwst.engine.checkpoint.safe_loading`); outside those calls mmengine's own loader
is back, so other models in the same process are not affected.
"""

from __future__ import annotations

from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch import nn

from ..registry import RUNNERS
from .checkpoint import safe_loading
from .data_check import check_required_paths


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """:class:`mmengine.runner.Runner` that runs :func:`check_required_paths` for the
    loops of ``train()``, ``val()`` and ``test()`` before building them (a config without
    ``mmwst.CheckPathsHook`` is not checked), and that compiles the model's backbone in
    place for the ``compile`` option (module docstring).

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
        with safe_loading():
            return super().train()

    def load_checkpoint(self, *args, **kwargs):
        with safe_loading():
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, *args, **kwargs):
        with safe_loading():
            return super().resume(*args, **kwargs)

    def _maybe_compile(self, target: str) -> None:
        options = self.cfg.get('compile', None)
        if options is None or options is False:
            return
        if options is True:
            options = {}
        if not isinstance(options, dict):
            raise TypeError(
                f'compile = {options!r}: give True or a dict of torch.compile arguments, '
                "e.g. compile = dict(backend='inductor', mode='max-autotune')"
            )
        model = self.model.module if is_model_wrapper(self.model) else self.model
        backbone = getattr(model, 'backbone', None)
        if not isinstance(backbone, nn.Module):  # not an OpenMMLab model: mmengine's way
            return super()._maybe_compile(target)
        if getattr(backbone, '_compiled_call_impl', None) is None:  # once: resume, val
            backbone.compile(**options)
            self.logger.info(
                f'compiled the backbone ({type(backbone).__name__}) with torch.compile'
                f'({", ".join(f"{k}={v!r}" for k, v in options.items())}); the first '
                'iterations are slow while it compiles'
            )

    def val(self):
        check_required_paths(self.cfg, ('val',))
        with safe_loading():
            return super().val()

    def test(self):
        check_required_paths(self.cfg, ('test',))
        with safe_loading():
            return super().test()
