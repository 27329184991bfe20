"""An optimizer constructor that leaves frozen parameters out of the optimizer."""

from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TunerOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (``paramwise_cfg`` and all), trainable only.

    mmengine puts every parameter into the optimizer, ``requires_grad`` or not. With a
    frozen 86M-parameter host that wastes memory in optimizer bookkeeping and lets
    weight decay or a future unfreeze touch weights that must stay fixed; here the
    frozen parameters never enter the optimizer. Raises ``ValueError`` when nothing is
    trainable.

    Examples:
        >>> from mmengine.optim import build_optim_wrapper
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.LoRA', rank=4)])
        >>> wrapper = build_optim_wrapper(model, dict(
        ...     constructor='mmwst.TunerOptimWrapperConstructor',
        ...     optimizer=dict(type='AdamW', lr=1e-3)))
        >>> sum(p.numel() for g in wrapper.optimizer.param_groups for p in g['params'])
        1024
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        wrapper = super().__call__(model)
        optimizer = wrapper.optimizer
        groups = []
        for group in optimizer.param_groups:
            group['params'] = [p for p in group['params'] if p.requires_grad]
            if group['params']:
                groups.append(group)
        if not groups:
            raise ValueError(
                'the model has no trainable parameter: every parameter has '
                'requires_grad=False; check the tuners and the head'
            )
        optimizer.param_groups = groups
        return wrapper
