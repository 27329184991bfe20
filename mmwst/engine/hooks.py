"""Training hooks."""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..models.param_report import parameter_report
from ..registry import HOOKS


@HOOKS.register_module()
class ParamReportHook(Hook):
    """Log the trainable-parameter table (per tuner, neck, head) when training starts."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        report = parameter_report(model)
        runner.logger.info('trainable parameters:\n' + report.table())
