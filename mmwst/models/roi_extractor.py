"""mmdet's single-level RoI extractor with :class:`SeparableRoIAlign` as its RoI layer.

This module imports mmdet, which ``import mmwst`` does not: configs name the extractor
``type='mmwst.SeparableRoIExtractor'``, registered in mmwst's registry as
:func:`~mmwst.models.layers.roi_align.build_separable_roi_extractor`, which imports this
module when a model first builds one.
"""

from __future__ import annotations

from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from torch import nn

from .layers.roi_align import SeparableRoIAlign

ROI_LAYERS = ('RoIAlign', 'SeparableRoIAlign', 'mmwst.SeparableRoIAlign')


class SeparableRoIExtractor(SingleRoIExtractor):
    """mmdet's ``SingleRoIExtractor`` (each region read from the level of its size,
    ``finest_scale``) whose RoI layers are :class:`SeparableRoIAlign`: mmcv's RoIAlign
    values, computed as two matrix products per image, several times faster on the
    small maps of a detector trained on the CPU (the shapes demo's Cascade Mask R-CNN
    spends about a third of its step in mmcv's RoIAlign kernel otherwise).

    ``roi_layer`` is written as for mmdet: ``dict(type='RoIAlign', output_size=7,
    sampling_ratio=0)`` (``aligned`` defaults to True as in mmcv); a ``'max'`` pool or
    another layer type is refused.

    Examples:
        >>> extractor = SeparableRoIExtractor(
        ...     roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        ...     out_channels=16, featmap_strides=[4, 8])
        >>> extractor.roi_layers[1]
        SeparableRoIAlign(output_size=(7, 7), spatial_scale=0.125, sampling_ratio=0, aligned=True)
    """

    def build_roi_layers(self, layer_cfg: dict, featmap_strides: list[int]) -> nn.ModuleList:
        cfg = dict(layer_cfg)
        kind = cfg.pop('type', 'RoIAlign')
        if kind not in ROI_LAYERS:
            raise ValueError(
                f'SeparableRoIExtractor computes RoIAlign only (roi_layer type one of '
                f"{ROI_LAYERS}), got {kind!r}; use mmdet's SingleRoIExtractor for other layers"
            )
        cfg.pop('use_torchvision', None)
        return nn.ModuleList(
            [SeparableRoIAlign(spatial_scale=1 / stride, **cfg) for stride in featmap_strides]
        )
