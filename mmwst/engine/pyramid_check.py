"""Check that a dense model's neck and heads fit the pyramid its backbone declares.

mmwst backbones declare what they emit - ``out_channels`` and ``out_strides``, one entry
per map (:class:`~mmwst.models.backbones.DenseTunedViT`: four maps at strides 4 to 32;
:class:`~mmwst.models.backbones.TunedVisionTransformer`: the patch map at stride p) -
and :class:`~mmwst.models.necks.SimpleFeaturePyramid` declares what it reads and emits.
:func:`check_pyramid` compares them with what the rest of the detector or segmentor
expects (mmdet's ``FPN`` ``in_channels``, the RPN's anchor strides, mmseg's decode and
auxiliary heads' ``in_channels``), so that a config that does not fit fails before
training with the widths and strides on both sides, instead of a shape error inside a
convolution at the first iteration. :class:`CheckPyramidHook` runs it when a run starts.
"""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from ..registry import HOOKS


class PyramidMismatchError(ValueError):
    """A neck or head does not fit the maps the backbone emits."""


def _pyramid_after(backbone: nn.Module, neck) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (widths, strides) that reach the module after the mmwst parts."""
    channels, strides = tuple(backbone.out_channels), tuple(backbone.out_strides)
    necks = list(neck) if isinstance(neck, nn.Sequential) else [neck] if neck else []
    for module in necks:
        if not hasattr(module, 'in_stride'):  # not one of ours: it consumes the pyramid
            break
        if channels[module.in_index] != module.in_channels or (
            strides[module.in_index] != module.in_stride
        ):
            raise PyramidMismatchError(
                f'{type(module).__name__} reads a map of width {module.in_channels} at stride '
                f'{module.in_stride} (in_channels, in_stride), but the backbone emits widths '
                f'{list(channels)} at strides {list(strides)}: set '
                f'in_channels={channels[module.in_index]}, '
                f'in_stride={strides[module.in_index]} in the neck config'
            )
        channels, strides = tuple(module.out_channels), tuple(module.strides)
    return channels, strides


def check_pyramid(model: nn.Module) -> None:
    """Raise :class:`PyramidMismatchError` where ``model``'s neck or heads do not fit.

    Models whose backbone declares nothing (not an mmwst backbone) are left alone.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'out_strides'):
        return
    neck = getattr(model, 'neck', None)
    channels, strides = _pyramid_after(backbone, neck)
    fpn = neck[-1] if isinstance(neck, nn.Sequential) else neck
    if fpn is not None and not hasattr(fpn, 'in_stride') and hasattr(fpn, 'in_channels'):
        expected = list(fpn.in_channels)
        if expected != list(channels):
            raise PyramidMismatchError(
                f'the neck ({type(fpn).__name__}) expects in_channels={expected}, but the maps '
                f'that reach it have widths {list(channels)} (strides {list(strides)}): set '
                f'model.neck in_channels={list(channels)}'
            )
        rpn = getattr(model, 'rpn_head', None)
        anchors = getattr(getattr(rpn, 'prior_generator', None), 'strides', None)
        if anchors is not None:
            # an FPN keeps the strides of its inputs and adds coarser levels (x2 each)
            levels = [s for s, _ in anchors][: len(strides)]
            if levels != list(strides[: len(levels)]):
                raise PyramidMismatchError(
                    f'the RPN anchors sit at strides {[s for s, _ in anchors]} but the pyramid '
                    f'has strides {list(strides)}: set '
                    'model.rpn_head.anchor_generator.strides to match'
                )
    for name in ('decode_head', 'auxiliary_head'):
        head = getattr(model, name, None)
        heads = head if isinstance(head, nn.ModuleList) else [head] if head is not None else []
        for h in heads:
            index = h.in_index if isinstance(h.in_index, (list, tuple)) else [h.in_index]
            wanted = h.in_channels if isinstance(h.in_channels, (list, tuple)) else [h.in_channels]
            got = [channels[i] for i in index]
            fix = got if len(got) > 1 else got[0]
            if list(wanted) != got:
                raise PyramidMismatchError(
                    f'model.{name} reads maps {list(index)} with in_channels={list(wanted)}, '
                    f'but those maps have widths {got} (the pyramid: widths {list(channels)} '
                    f'at strides {list(strides)}): set its in_channels={fix}'
                )


@HOOKS.register_module()
class CheckPyramidHook(Hook):
    """Run :func:`check_pyramid` on the model before any training, validation or test.

    Examples:
        In a config: ``custom_hooks = [dict(type='mmwst.CheckPyramidHook')]`` (every dense
        mmwst runtime lists it). What it checks:

        >>> from types import SimpleNamespace
        >>> from mmwst.engine import check_pyramid
        >>> backbone = SimpleNamespace(out_channels=(32, 48, 64, 96), out_strides=(4, 8, 16, 32))
        >>> neck = SimpleNamespace(in_channels=[32, 48, 64, 128])  # an FPN
        >>> check_pyramid(SimpleNamespace(backbone=backbone, neck=neck))
        Traceback (most recent call last):
        ...
        mmwst.engine.pyramid_check.PyramidMismatchError: the neck (SimpleNamespace) expects ...
    """

    priority = 'VERY_HIGH'

    def _check(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_pyramid(model)

    def before_run(self, runner) -> None:
        self._check(runner)
