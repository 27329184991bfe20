"""An FCN mask head's upsampling and predictor as matrix products.

Mask R-CNN's mask head ends in a 2x2, stride-2 transposed convolution, a ReLU and a 1x1
convolution to one logit map per class. Both are linear maps of each cell's channels:
the transposed convolution writes output cell ``(s*i + a, s*j + b)`` as
``W[:, :, a, b]^T x[:, i, j] + bias`` (its kernel equals its stride, so no two input
cells meet in one output cell), and the predictor reads one cell at a time. So the pair
is two matrix products on the cells' channel vectors, with the ``s x s`` block of each
input cell laid out by a reshape - a pixel shuffle. On the CPU this is several times
faster than the transposed-convolution kernel (mmdet's mask head spent more of a
Cascade Mask R-CNN step in it than in its two 3x3 convolutions).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ...registry import MODELS


def deconv_relu_logits(x: Tensor, upsample: nn.ConvTranspose2d, logits: nn.Conv2d) -> Tensor:
    """``logits(relu(upsample(x)))`` for a transposed convolution whose kernel equals
    its stride and a 1x1 predictor, as two matrix products and a pixel shuffle.

    Args:
        x: ``(N, C, H, W)`` features.
        upsample: ``ConvTranspose2d(C, C', kernel_size=s, stride=s)`` (no padding,
            dilation or groups).
        logits: ``Conv2d(C', K, 1)``.

    Returns:
        ``(N, K, s*H, s*W)``: the same values as the modules applied in turn, to
        floating-point rounding.

    Examples:
        >>> up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        >>> head = nn.Conv2d(6, 3, 1)
        >>> x = torch.randn(4, 8, 5, 5)
        >>> torch.allclose(deconv_relu_logits(x, up, head),
        ...                head(torch.relu(up(x))), atol=1e-6)
        True
    """
    check_shuffle_deconv(upsample, logits)
    n, c, h, w = x.shape
    s = upsample.stride[0]
    out = upsample.out_channels
    # (C, C', s, s) -> (C, s, s, C'): each input cell's s x s block, channels last
    weight = upsample.weight.permute(0, 2, 3, 1).reshape(c, s * s * out)
    cells = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    up = cells @ weight  # (N H W, s s C')
    up = up.view(n, h, w, s, s, out)
    if upsample.bias is not None:
        up = up + upsample.bias
    up = torch.relu(up)
    pred = F.linear(up, logits.weight.flatten(1), logits.bias)  # (N, H, W, s, s, K)
    # (N, H, W, a, b, K) -> (N, K, H, a, W, b): row s*i + a, column s*j + b
    pred = pred.permute(0, 5, 1, 3, 2, 4)
    return pred.reshape(n, logits.out_channels, h * s, w * s)


def check_shuffle_deconv(upsample: nn.Module, logits: nn.Module) -> None:
    """Refuse, with the reason, an upsampling or predictor that
    :func:`deconv_relu_logits` does not compute."""
    if not isinstance(upsample, nn.ConvTranspose2d):
        raise TypeError(
            f'the mask head upsamples with {type(upsample).__name__}; the matrix-product '
            "path needs upsample_cfg=dict(type='deconv', ...) (use mmdet's FCNMaskHead "
            'for other upsampling)'
        )
    kernel, stride = tuple(upsample.kernel_size), tuple(upsample.stride)
    if (
        kernel != stride
        or kernel[0] != kernel[1]
        or any(upsample.padding)
        or any(upsample.output_padding)
        or any(d != 1 for d in upsample.dilation)
        or upsample.groups != 1
    ):
        raise ValueError(
            'the matrix-product path needs a transposed convolution whose square kernel '
            f'equals its stride, without padding, dilation or groups; got kernel {kernel}, '
            f'stride {stride}, padding {upsample.padding}, output_padding '
            f'{upsample.output_padding}, dilation {upsample.dilation}, groups '
            f'{upsample.groups}'
        )
    if not isinstance(logits, nn.Conv2d) or tuple(logits.kernel_size) != (1, 1):
        raise TypeError(
            f'the mask predictor is {logits!r}; the matrix-product path needs a 1x1 '
            "nn.Conv2d (predictor_cfg=dict(type='Conv'))"
        )
    if logits.groups != 1 or any(logits.padding) or tuple(logits.stride) != (1, 1):
        raise ValueError(f'the mask predictor {logits!r} must be a plain 1x1 convolution')


@MODELS.register_module(name='ShuffleFCNMaskHead')
def build_shuffle_fcn_mask_head(**kwargs) -> nn.Module:
    """``type='mmwst.ShuffleFCNMaskHead'``: mmdet's ``FCNMaskHead`` whose deconvolution,
    ReLU and predictor run as :func:`deconv_relu_logits`
    (:class:`mmwst.models.mask_head.ShuffleFCNMaskHead`). Registered as a builder so
    that ``import mmwst`` does not import mmdet.

    Examples:
        >>> head = build_shuffle_fcn_mask_head(
        ...     num_convs=2, in_channels=16, conv_out_channels=16, num_classes=3)
        >>> head(torch.randn(5, 16, 14, 14)).shape
        torch.Size([5, 3, 28, 28])
    """
    from ..mask_head import ShuffleFCNMaskHead

    return ShuffleFCNMaskHead(**kwargs)
