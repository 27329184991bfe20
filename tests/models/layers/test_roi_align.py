"""SeparableRoIAlign against mmcv's RoIAlign kernel: values and gradients."""

import pytest
import torch

from mmwst.models.layers.roi_align import SeparableRoIAlign

mmcv_ops = pytest.importorskip('mmcv.ops')


def _rois(generator: torch.Generator, count: int, images: int, side: float) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * side * 0.8
    size = side * (0.05 + 0.5 * torch.rand(count, 2, generator=generator))
    index = torch.randint(0, images, (count, 1), generator=generator).float()
    return torch.cat([index, corner, corner + size], dim=1)


# boxes at every border rule of mmcv's kernel: beyond the map, straddling its first and
# last cells, thinner than a cell, one the size of the image
ODD_BOXES = torch.tensor(
    [
        [0, -10.0, -10.0, 5.0, 5.0],
        [1, 120.0, 120.0, 140.0, 150.0],
        [2, 3.0, 3.0, 3.5, 3.2],
        [3, 0.0, 0.0, 127.0, 127.0],
        [1, -3.0, 20.0, 60.0, 200.0],
        [2, 140.0, 10.0, 160.0, 30.0],
    ]
)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 1, 2, 3])
@pytest.mark.parametrize('output_size', [7, (14, 5)])
def test_values_and_gradients_equal_mmcv(aligned, sampling_ratio, output_size):
    generator = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 6, 32, 24, generator=generator, dtype=torch.float64)
    rois = torch.cat([_rois(generator, 40, 4, 110.0), ODD_BOXES])
    rois = rois[torch.randperm(len(rois), generator=generator)]  # not listed by image
    ours, theirs = feats.clone().requires_grad_(), feats.float().clone().requires_grad_()
    kwargs = dict(spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned)
    got = SeparableRoIAlign(output_size, **kwargs)(ours, rois.double())
    want = mmcv_ops.RoIAlign(output_size, **kwargs)(theirs, rois)
    assert got.shape == want.shape
    torch.testing.assert_close(got.float(), want, rtol=0, atol=2e-5)
    grad = torch.randn(want.shape, generator=generator)
    got.backward(grad.double())
    want.backward(grad)
    torch.testing.assert_close(ours.grad.float(), theirs.grad, rtol=0, atol=2e-5)


def test_regions_sorted_by_image_take_the_fast_path_with_the_same_values():
    generator = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 4, 16, 16, generator=generator)
    rois = _rois(generator, 30, 3, 60.0)
    rois = rois[torch.argsort(rois[:, 0], stable=True)]
    layer = SeparableRoIAlign(7, spatial_scale=0.25)
    torch.testing.assert_close(
        layer(feats, rois), mmcv_ops.RoIAlign(7, 0.25, 0)(feats, rois), rtol=0, atol=1e-5
    )
    assert layer(feats, rois[:0]).shape == (0, 4, 7, 7)
    # an inverted box (x2 < x1; mmcv's CPU kernel asserts) takes no sample: zeros
    inverted = torch.tensor([[0, 50.0, 20.0, 40.0, 30.0]])
    assert layer(feats, inverted).abs().max() == 0


def test_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="pool_mode='max'"):
        SeparableRoIAlign(7, pool_mode='max')
    with pytest.raises(ValueError, match='sampling_ratio'):
        SeparableRoIAlign(7, sampling_ratio=-1)
    with pytest.raises(ValueError, match=r'rois must be \(n, 5\)'):
        SeparableRoIAlign(7)(torch.zeros(1, 2, 8, 8), torch.zeros(3, 4))
    for bad in (float('inf'), float('nan')):  # named, not an overflow deep inside
        with pytest.raises(ValueError, match='sample points per bin'):
            SeparableRoIAlign(7)(torch.zeros(1, 2, 8, 8), torch.tensor([[0, 0, 0, bad, 5.0]]))


def test_extractor_builds_separable_layers_and_reads_the_same_features():
    extractors = pytest.importorskip('mmdet.models.roi_heads.roi_extractors')
    from mmwst.models.roi_extractor import SeparableRoIExtractor

    cfg = dict(
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=8,
        featmap_strides=[4, 8, 16, 32],
        finest_scale=14,
    )
    ours, theirs = SeparableRoIExtractor(**cfg), extractors.SingleRoIExtractor(**cfg)
    assert all(isinstance(layer, SeparableRoIAlign) for layer in ours.roi_layers)
    generator = torch.Generator().manual_seed(2)
    feats = [torch.randn(2, 8, 128 // s, 128 // s, generator=generator) for s in (4, 8, 16, 32)]
    rois = _rois(generator, 50, 2, 128.0)
    torch.testing.assert_close(ours(feats, rois), theirs(feats, rois), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='RoIAlign only'):
        SeparableRoIExtractor(**{**cfg, 'roi_layer': dict(type='RoIPool', output_size=7)})


@pytest.mark.parametrize('aligned', [True, False])
def test_sample_points_exactly_on_the_border_rules(aligned):
    # one sample per region, at its centre: on y = H and x = W (read at the last cell),
    # on y = -1 and x = -1 (read at the first), just beyond them (zero)
    feats = torch.randn(1, 3, 32, 24, generator=torch.Generator().manual_seed(3))
    shift = 0.5 if aligned else 0.0
    centres = [(32.0, 10.0), (10.0, 24.0), (-1.0, 5.0), (5.0, -1.0), (32.25, 5.0), (5.0, -1.25)]
    rois = torch.tensor(
        [
            [
                0.0,
                4 * (x + shift) - 8,
                4 * (y + shift) - 8,
                4 * (x + shift) + 8,
                4 * (y + shift) + 8,
            ]
            for y, x in centres
        ]
    )
    kwargs = dict(spatial_scale=0.25, sampling_ratio=1, aligned=aligned)
    got = SeparableRoIAlign(1, **kwargs)(feats, rois)
    want = mmcv_ops.RoIAlign(1, **kwargs)(feats, rois)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert want[:4].abs().amin() > 0 and want[4:].abs().amax() == 0
