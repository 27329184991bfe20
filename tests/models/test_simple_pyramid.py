"""mmwst.SimpleFeaturePyramid at patch sizes other than 16: 14 (resampled) and 8."""

import pytest
import torch

from mmwst.models.necks import SimpleFeaturePyramid


def test_a_stride_14_map_gives_the_strides_4_8_16_32():
    neck = SimpleFeaturePyramid(in_channels=32, in_stride=14)
    assert neck.strides == [4, 8, 16, 32]
    # an image of 112 x 84 pixels: an 8 x 6 patch grid, resampled to ceil(112 / 16) x
    # ceil(84 / 16) = 7 x 6 before the pyramid is built
    maps = neck([torch.randn(2, 32, 8, 6)])
    assert [tuple(m.shape[-2:]) for m in maps] == [(28, 24), (14, 12), (7, 6), (4, 3)]
    # at a multiple of 4 nothing is resampled
    plain = SimpleFeaturePyramid(in_channels=32, in_stride=16)
    same = torch.randn(1, 32, 7, 6)
    assert torch.equal(plain([same])[2], same)


def test_a_constant_map_stays_constant_through_the_resampling():
    neck = SimpleFeaturePyramid(in_channels=32, in_stride=14, scales=(1.0,))
    maps = neck([torch.full((1, 32, 9, 5), 3.0)])
    assert maps[0].shape[-2:] == (8, 5) and torch.allclose(maps[0], torch.tensor(3.0))


def test_a_bad_stride_is_refused():
    with pytest.raises(ValueError, match='integer >= 2'):
        SimpleFeaturePyramid(in_channels=32, in_stride=1)


def test_a_stride_8_map_gives_the_strides_4_8_16_32_with_a_quarter_scale():
    neck = SimpleFeaturePyramid(in_channels=32, in_stride=8, scales=(2.0, 1.0, 0.5, 0.25))
    assert neck.strides == [4, 8, 16, 32] and neck.out_channels == [16, 32, 32, 32]
    x = torch.randn(2, 32, 15, 9)  # odd sizes: the last windows are partial (ceil mode)
    maps = neck([x])
    assert [tuple(m.shape[-2:]) for m in maps] == [(30, 18), (15, 9), (8, 5), (4, 3)]
    assert torch.equal(maps[1], x)
    # the quarter scale is the half scale applied twice
    halved = torch.nn.functional.max_pool2d(maps[2], kernel_size=2, stride=2, ceil_mode=True)
    assert torch.equal(maps[3], halved)
    with pytest.raises(ValueError, match=r'\(2.0, 1.0, 0.5, 0.25\)'):
        SimpleFeaturePyramid(in_channels=32, in_stride=8, scales=(2.0, 1.0, 0.5, 0.125))
