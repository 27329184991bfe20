"""ViTDet-style simple feature pyramid: four maps from a plain ViT's last feature map."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.norm import LayerNorm2d
from ..layers.resize import resize_map


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Strides 4 / 8 / 16 / 32 from one stride-16 map (Li et al., ViTDet, ECCV 2022).

    From the last ViT feature map ``(B, D, h, w)`` (backbone ``out_type='featmap'``):
    stride 4 = two 2x transposed convolutions (D -> D/2 -> D/4, LayerNorm + GELU between),
    stride 8 = one (D -> D/2), stride 16 = the map itself, stride 32 = 2x max-pooling.
    From a stride-8 map (patch 8) the same four strides are the scales
    ``(2, 1, 0.5, 0.25)``: one transposed convolution, the map, 2x and 4x max-pooling
    (widths ``(D/2, D, D, D)``).
    The maps keep these widths - ``(D/4, D/2, D, D)`` - and go on to mmdet's ``FPN`` or
    straight to mmseg's ``UPerHead``, exactly like the dense WST/HST backbone's pyramid,
    so every tuner can be compared with the same detector and segmentor.

    Trainable parameters: two ``D -> D/2`` transposed convs (``2 D^2 + D/2`` each), a
    LayerNorm (``D``) and a ``D/2 -> D/4`` transposed conv (``D^2 / 2 + D/4``); for
    D = 768: 2,655,936.

    Args:
        in_channels (int): D, the ViT width.
        in_index (int): Which backbone output to use. Defaults to -1 (the last).
        scales (Sequence[float]): Which maps to emit, relative to the input map, taken
            from 4, 2, 1, 0.5 and 0.25. Defaults to ``(4.0, 2.0, 1.0, 0.5)``.
        in_stride (int): Stride of the input map (the ViT's patch size): the maps come
            out at ``in_stride / scale``. A stride that is not a multiple of 4 (patch 14:
            DINOv2, EVA-02) is first resampled (bilinear) to the stride-16 grid of the
            image, ``ceil(H / 16) x ceil(W / 16)``, so that the maps keep the strides
            4 / 8 / 16 / 32 detectors and segmentors assume. Defaults to 16. mmwst's
            :func:`~mmwst.engine.check_pyramid` compares it with the backbone's
            ``out_strides`` before a run starts.
        init_cfg (dict, optional): mmengine init config.

    Examples:
        >>> import torch
        >>> from mmwst.models.necks import SimpleFeaturePyramid
        >>> neck = SimpleFeaturePyramid(in_channels=64, in_stride=16)
        >>> [tuple(m.shape) for m in neck([torch.rand(1, 64, 4, 6)])]
        [(1, 16, 16, 24), (1, 32, 8, 12), (1, 64, 4, 6), (1, 64, 2, 3)]
        >>> neck.out_channels, neck.strides
        ([16, 32, 64, 64], [4, 8, 16, 32])
    """

    def __init__(
        self,
        in_channels: int,
        in_index: int = -1,
        scales: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        in_stride: int = 16,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg)
        unknown = set(scales) - {4.0, 2.0, 1.0, 0.5, 0.25}
        if unknown or not scales:
            raise ValueError(
                f'scales must be taken from (4.0, 2.0, 1.0, 0.5, 0.25), got {scales}; for a '
                'stride-8 map (patch 8) strides 4 / 8 / 16 / 32 are (2.0, 1.0, 0.5, 0.25)'
            )
        if in_channels % 4:
            raise ValueError(f'in_channels must be divisible by 4, got {in_channels}')
        self.in_channels = in_channels
        if isinstance(in_stride, bool) or not isinstance(in_stride, int) or in_stride < 2:
            raise ValueError(f'in_stride must be an integer >= 2, got {in_stride!r}')
        self.in_index = in_index
        self.in_stride = in_stride
        # the stride the pyramid is built from: the input's, or 16 after resampling
        self.base_stride = in_stride if in_stride % 4 == 0 else 16
        self.scales = tuple(scales)
        half, quarter = in_channels // 2, in_channels // 4
        self.up4 = (
            nn.Sequential(
                nn.ConvTranspose2d(in_channels, half, 2, stride=2),
                LayerNorm2d(half),
                nn.GELU(),
                nn.ConvTranspose2d(half, quarter, 2, stride=2),
            )
            if 4.0 in scales
            else None
        )
        self.up2 = nn.ConvTranspose2d(in_channels, half, 2, stride=2) if 2.0 in scales else None
        widths = {4.0: quarter, 2.0: half, 1.0: in_channels, 0.5: in_channels, 0.25: in_channels}
        self.out_channels = [widths[s] for s in self.scales]
        self.strides = [int(self.base_stride / s) for s in self.scales]

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        x = inputs[self.in_index]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'expected a (B, {self.in_channels}, h, w) map (backbone '
                f"out_type='featmap'), got {tuple(x.shape)}"
            )
        if self.base_stride != self.in_stride:  # e.g. patch 14 -> the stride-16 grid
            h, w = x.shape[-2:]
            size = (-(-h * self.in_stride // 16), -(-w * self.in_stride // 16))
            x = resize_map(x, size)
        outs = []
        for scale in self.scales:
            if scale == 4.0:
                outs.append(self.up4(x))
            elif scale == 2.0:
                outs.append(self.up2(x))
            elif scale == 1.0:
                outs.append(x)
            else:  # 0.5 or 0.25: 2x or 4x max-pooling (4x equals 2x twice, ceil mode)
                size = int(1 / scale)
                outs.append(F.max_pool2d(x, kernel_size=size, stride=size, ceil_mode=True))
        return tuple(outs)
