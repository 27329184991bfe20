"""The mask head's deconvolution and predictor as matrix products against mmdet's head."""

import pytest
import torch
from torch import nn

from mmwst.models.layers.mask_upsample import deconv_relu_logits

pytest.importorskip('mmdet')


def _heads(num_convs=2, width=16, classes=3, **kwargs):
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead

    from mmwst.registry import MODELS

    torch.manual_seed(0)
    theirs = FCNMaskHead(
        num_convs=num_convs,
        in_channels=width,
        conv_out_channels=width,
        num_classes=classes,
        **kwargs,
    )
    theirs.init_weights()
    with torch.no_grad():  # mmdet starts the biases at 0: give them values to check
        for module in (theirs.upsample, theirs.conv_logits):
            module.bias.normal_()
    ours = MODELS.build(
        dict(
            type='ShuffleFCNMaskHead',
            num_convs=num_convs,
            in_channels=width,
            conv_out_channels=width,
            num_classes=classes,
            **kwargs,
        )
    )
    ours.load_state_dict(theirs.state_dict())  # the same keys
    return theirs.double(), ours.double()


@pytest.mark.parametrize('num_convs, classes, scale', [(2, 3, 2), (0, 5, 2), (1, 1, 3)])
def test_values_and_gradients_equal_mmdet(num_convs, classes, scale):
    theirs, ours = _heads(
        num_convs, classes=classes, upsample_cfg=dict(type='deconv', scale_factor=scale)
    )
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(7, 16, 14, 9, generator=generator, dtype=torch.float64)
    x_theirs, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = theirs(x_theirs), ours(x_ours)
    assert got.shape == want.shape == (7, classes, 14 * scale, 9 * scale)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    grad = torch.randn(want.shape, generator=generator, dtype=torch.float64)
    want.backward(grad)
    got.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=0, atol=1e-10)
    for (name, p), q in zip(theirs.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-10, msg=name)


def test_float32_values_within_rounding_and_the_function_alone():
    up = nn.ConvTranspose2d(8, 6, 2, stride=2)
    logits = nn.Conv2d(6, 4, 1)
    x = torch.randn(3, 8, 5, 7)
    torch.testing.assert_close(
        deconv_relu_logits(x, up, logits), logits(torch.relu(up(x))), rtol=0, atol=1e-5
    )
    up = nn.ConvTranspose2d(8, 6, 2, stride=2, bias=False)
    torch.testing.assert_close(
        deconv_relu_logits(x, up, logits), logits(torch.relu(up(x))), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize(
    'kwargs, error, match',
    [  # (a predictor other than a Conv fails in mmdet's own constructor first)
        (dict(upsample_cfg=dict(type='bilinear', scale_factor=2)), TypeError, "type='deconv'"),
        (dict(upsample_cfg=dict(type=None)), TypeError, "type='deconv'"),
    ],
)
def test_other_upsampling_or_predictors_are_refused_at_construction(kwargs, error, match):
    from mmwst.registry import MODELS

    cfg = dict(type='ShuffleFCNMaskHead', in_channels=8, conv_out_channels=8, num_classes=3)
    with pytest.raises(error, match=match):
        MODELS.build(dict(cfg, **kwargs))


def test_a_transposed_convolution_with_overlapping_kernels_is_refused():
    with pytest.raises(ValueError, match='kernel equals its stride'):
        deconv_relu_logits(
            torch.randn(1, 4, 3, 3), nn.ConvTranspose2d(4, 4, 3, stride=2), nn.Conv2d(4, 2, 1)
        )
    with pytest.raises(ValueError, match='kernel equals its stride'):
        deconv_relu_logits(
            torch.randn(1, 4, 3, 3),
            nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2),
            nn.Conv2d(4, 2, 1),
        )
