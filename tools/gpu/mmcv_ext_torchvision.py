"""Stand-in for mmcv's compiled ``mmcv._ext``, for timing detectors on a machine without
mmcv's CUDA build (``tools/gpu_speed.sh``, stage ``configs``).

Installed as ``mmcv/_ext.py`` beside mmcv's Python sources, it lets mmdet and mmseg
import, and runs the three compiled operators a Cascade Mask R-CNN and an UperNet train
with through torchvision's kernels, which compute the same functions:

- ``roi_align_forward`` / ``roi_align_backward`` (average pooling, ``aligned`` either
  way): ``torchvision.ops.roi_align`` and its backward kernel;
- ``nms`` (``offset=0``, mmdet's default): ``torchvision.ops.nms``.

Both compute in float32 whatever the inputs' precision (mmcv's kernels take float32
boxes and float16 or float32 features) and write mmcv's output tensors in place.

Every other operator of mmcv's extension raises at its first call, naming itself, so a
model that needs one fails loudly instead of being timed without it. Never installed by
``tools/setup_env.sh``: a training machine builds mmcv's own operators.
"""

from __future__ import annotations

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from torchvision.ops import nms as _tv_nms
from torchvision.ops import roi_align as _tv_roi_align


def roi_align_forward(
    input,
    rois,
    output,
    argmax_y,
    argmax_x,
    aligned_height,
    aligned_width,
    spatial_scale,
    sampling_ratio,
    pool_mode,
    aligned,
):
    if pool_mode != 1:
        raise NotImplementedError('mmcv._ext stand-in: RoIAlign max pooling is not provided')
    output.copy_(  # in float32, as mmcv's kernels accumulate
        _tv_roi_align(
            input.float(),
            rois.float(),
            (aligned_height, aligned_width),
            spatial_scale,
            sampling_ratio,
            bool(aligned),
        )
    )


def roi_align_backward(
    grad_output,
    rois,
    argmax_y,
    argmax_x,
    grad_input,
    aligned_height,
    aligned_width,
    spatial_scale,
    sampling_ratio,
    pool_mode,
    aligned,
):
    if pool_mode != 1:
        raise NotImplementedError('mmcv._ext stand-in: RoIAlign max pooling is not provided')
    batch, channels, height, width = grad_input.shape
    grad_input.copy_(
        torch.ops.torchvision._roi_align_backward(
            grad_output.float(),
            rois.float(),
            spatial_scale,
            aligned_height,
            aligned_width,
            batch,
            channels,
            height,
            width,
            sampling_ratio,
            bool(aligned),
        )
    )


def nms(boxes, scores, iou_threshold, offset=0):
    if offset != 0:
        raise NotImplementedError('mmcv._ext stand-in: nms with offset=1 is not provided')
    return _tv_nms(boxes.float(), scores.float(), float(iou_threshold))


def __getattr__(name: str):
    if name.startswith('__'):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise NotImplementedError(
            f"mmcv._ext stand-in: mmcv's compiled operator {name!r} is not provided here; "
            'build mmcv with its CUDA operators (tools/gpu_check.sh) for this model'
        )

    return missing
