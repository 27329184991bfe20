"""Training hooks."""

from __future__ import annotations

import json
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..models.param_report import parameter_report
from ..registry import HOOKS


@HOOKS.register_module()
class ParamReportHook(Hook):
    """Log the trainable-parameter table (per tuner, neck, head) when training starts.

    The same figures go to ``<work_dir>/param_report.json`` (read by tools/vtab_sweep.py).

    Examples:
        In a config: ``custom_hooks = [dict(type='mmwst.ParamReportHook')]``. The
        figures it logs:

        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> from mmwst.models.param_report import parameter_report
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.LoRA', rank=4)])
        >>> report = parameter_report(model)
        >>> report.trainable_without_head, report.total_without_head
        (1024, 24928)
    """

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        report = parameter_report(model)
        runner.logger.info('trainable parameters:\n' + report.table())
        if is_main_process():
            with open(osp.join(runner.work_dir, 'param_report.json'), 'w') as f:
                json.dump(report.as_dict(), f, indent=2)
