"""mmdet's FCN mask head with its upsampling and predictor as matrix products.

This module imports mmdet, which ``import mmwst`` does not: configs name the head
``type='mmwst.ShuffleFCNMaskHead'``, registered in mmwst's registry as
:func:`~mmwst.models.layers.mask_upsample.build_shuffle_fcn_mask_head`, which imports this
module when a model first builds one.
"""

from __future__ import annotations

from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from torch import Tensor

from .layers.mask_upsample import check_shuffle_deconv, deconv_relu_logits


class ShuffleFCNMaskHead(FCNMaskHead):
    """mmdet's ``FCNMaskHead`` (convolutions, a 2x2 stride-2 deconvolution, ReLU, a 1x1
    predictor) whose deconvolution, ReLU and predictor are computed by
    :func:`~mmwst.models.layers.mask_upsample.deconv_relu_logits`: two matrix products
    and a pixel shuffle instead of the transposed-convolution kernel.

    The same module, parameters, state-dict keys and initialisation as mmdet's head, so
    checkpoints of either load in the other; values and gradients equal mmdet's to
    floating-point rounding. Only the upsampling mmdet calls ``'deconv'`` with a 1x1
    ``Conv`` predictor is accepted (refused at construction otherwise).

    Examples:
        >>> import torch
        >>> head = ShuffleFCNMaskHead(
        ...     num_convs=1, in_channels=8, conv_out_channels=8, num_classes=3)
        >>> head(torch.randn(2, 8, 14, 14)).shape
        torch.Size([2, 3, 28, 28])
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        check_shuffle_deconv(self.upsample, self.conv_logits)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x)
        return deconv_relu_logits(x, self.upsample, self.conv_logits)
