import numpy as np
import pytest
import torch

from mmwst.models.layers import SpectralFilter2d
from mmwst.models.layers.spectral import spectral_product


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)


@pytest.mark.parametrize(
    'filter_type,per_layer,total', [('complex', 173_568, 2_256_384), ('real', 87_552, 1_138_176)]
)
def test_parameter_counts(filter_type: str, per_layer: int, total: int):
    layer = SpectralFilter2d(768, (14, 14), filter_type)
    assert _num_params(layer) == per_layer
    expected_shape = (14, 8, 768, 2) if filter_type == 'complex' else (14, 8, 768)
    assert layer.weight.shape == expected_shape
    assert _num_params(layer) * 13 == total
    assert per_layer == 14 * 8 * 768 * (2 if filter_type == 'complex' else 1) + 2 * 768


def test_init_statistics_and_reset():
    layer = SpectralFilter2d(768, (14, 14))
    assert abs(layer.weight.mean().item()) < 1e-3
    assert layer.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert layer.gamma.mean().item() == pytest.approx(1.0, abs=5e-3)
    assert layer.gamma.std().item() == pytest.approx(0.02, rel=0.2)
    assert abs(layer.beta.mean().item()) < 5e-3
    assert layer.beta.std().item() == pytest.approx(0.02, rel=0.2)
    with torch.no_grad():
        layer.weight.fill_(3.0)
        layer.gamma.zero_()
    layer.init_weights()
    assert layer.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert layer.gamma.mean().item() == pytest.approx(1.0, abs=5e-3)


def _set_params(layer: SpectralFilter2d, weight: float) -> None:
    with torch.no_grad():
        layer.weight.zero_()
        if layer.filter_type == 'complex':
            layer.weight[..., 0] = weight  # real part only
        else:
            layer.weight.fill_(weight)
        layer.gamma.fill_(1.0)
        layer.beta.zero_()


@pytest.mark.parametrize('filter_type', ['complex', 'real'])
def test_zero_filter_is_identity(filter_type: str):
    layer = SpectralFilter2d(16, (6, 5), filter_type)
    _set_params(layer, 0.0)
    x = _randn(2, 6, 5, 16)
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize('filter_type', ['complex', 'real'])
@pytest.mark.parametrize('grid', [(6, 5), (4, 8)])
def test_all_pass_filter_doubles_input(filter_type: str, grid: tuple[int, int]):
    layer = SpectralFilter2d(16, grid, filter_type)
    _set_params(layer, 1.0)
    x = _randn(2, *grid, 16)
    torch.testing.assert_close(layer(x), 2 * x, rtol=0, atol=1e-5)


@pytest.mark.parametrize('filter_type', ['complex', 'real'])
def test_matches_numpy_reference(filter_type: str):
    h, w, dim = 5, 6, 4
    layer = SpectralFilter2d(dim, (h, w), filter_type)
    x = _randn(3, h, w, dim, seed=1)
    weight = layer.weight.detach().double().numpy()
    kernel = weight[..., 0] + 1j * weight[..., 1] if filter_type == 'complex' else weight
    spectrum = np.fft.rfft2(x.double().numpy(), axes=(1, 2), norm='ortho')
    filtered = np.fft.irfft2(spectrum * kernel, s=(h, w), axes=(1, 2), norm='ortho')
    gamma = layer.gamma.detach().double().numpy()
    beta = layer.beta.detach().double().numpy()
    expected = x.double().numpy() + gamma * filtered + beta
    out = layer(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-5)
    # Float64 inputs are filtered in float64.
    out64 = layer(x.double())
    assert out64.dtype == torch.float64
    np.testing.assert_allclose(out64.detach().numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize('filter_type', ['complex', 'real'])
def test_resized_filter_on_other_grid(filter_type: str):
    layer = SpectralFilter2d(8, (14, 14), filter_type)
    x = _randn(2, 16, 20, 8)
    out = layer(x)
    assert out.shape == (2, 16, 20, 8)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert layer.weight.grad is not None
    assert layer.weight.grad.abs().sum() > 0
    assert layer.gamma.grad is not None and layer.beta.grad is not None

    kernel = layer.frequency_filter((16, 20))
    assert kernel.shape == (16, 11, 8)
    assert kernel.is_complex() == (filter_type == 'complex')
    stored = layer.frequency_filter()
    assert stored.shape == (14, 8, 8)
    # align_corners=True: the corner bins (DC, Nyquist) keep their values.
    for i, j in [(0, 0), (-1, -1), (0, -1), (-1, 0)]:
        torch.testing.assert_close(kernel[i, j], stored[i, j])
    # Bilinear: the middle row of a 3-row filter resized to 5 rows is the input row.
    small = SpectralFilter2d(8, (3, 4), filter_type)
    torch.testing.assert_close(small.frequency_filter((5, 4))[2], small.frequency_filter()[1])
    torch.testing.assert_close(
        small.frequency_filter((5, 4))[1], small.frequency_filter()[:2].mean(0)
    )


def test_resized_all_pass_filter_still_passes_signal():
    layer = SpectralFilter2d(4, (14, 14), 'real')
    _set_params(layer, 1.0)
    x = _randn(1, 16, 20, 4)
    torch.testing.assert_close(layer(x), 2 * x, rtol=0, atol=1e-5)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_input_keeps_dtype(dtype: torch.dtype):
    layer = SpectralFilter2d(8, (4, 4))
    x = _randn(2, 4, 4, 8).to(dtype)
    out = layer(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), layer(x.float()), rtol=1e-2, atol=2e-2)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="filter_type must be one of .* got 'fourier'"):
        SpectralFilter2d(8, (4, 4), 'fourier')
    with pytest.raises(ValueError, match='dim must be a positive int, got 0'):
        SpectralFilter2d(0, (4, 4))
    with pytest.raises(ValueError, match='grid_size must be a pair'):
        SpectralFilter2d(8, (4, 4, 4))
    with pytest.raises(ValueError, match=r'grid_size\[1\] must be a positive int'):
        SpectralFilter2d(8, (4, -1))
    layer = SpectralFilter2d(8, (4, 4))
    with pytest.raises(ValueError, match='D=8, got shape'):
        layer(torch.zeros(1, 4, 4, 6))
    with pytest.raises(ValueError, match=r'\(B, h, w, D\)'):
        layer(torch.zeros(4, 4, 8))


@pytest.mark.parametrize('size', [(4, 6), (5, 7), (9,), (8,)], ids=str)
@pytest.mark.parametrize('complex_kernel', [True, False], ids=['complex', 'real'])
def test_spectral_product_has_the_transforms_values_and_gradients(size, complex_kernel):
    """The written-out backward (the input's gradient as the same filter with the
    conjugate kernel, the kernel's with the mirrored bins doubled) equals autograd's
    through the two transforms, for even and odd last sizes, in 2-D and 1-D."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, *size, generator=gen, dtype=torch.float64).requires_grad_()
    bins = (*size[:-1], size[-1] // 2 + 1)
    kernel = torch.randn(5, *bins, generator=gen, dtype=torch.float64)
    if complex_kernel:
        kernel = torch.complex(kernel, torch.randn(kernel.shape, generator=gen).double())
    kernel.requires_grad_()
    dims = tuple(range(-len(size), 0))
    expected = torch.fft.irfftn(
        torch.fft.rfftn(x, dim=dims, norm='ortho') * kernel, s=size, dim=dims, norm='ortho'
    )
    out = spectral_product(x, kernel, size)
    torch.testing.assert_close(out, expected)
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    for ours, theirs in zip(
        torch.autograd.grad(out, (x, kernel), grad),
        torch.autograd.grad(expected, (x, kernel), grad),
    ):
        assert ours.dtype == theirs.dtype
        torch.testing.assert_close(ours, theirs)


def test_spectral_product_backward_runs_no_complex_transform():
    """Backward: one forward real transform of the gradient and one real inverse for
    the input's gradient - no zero-padded complex transform, no copy of its real part."""
    from tools.benchmarking.ops import count_ops

    x = _randn(2, 8, 14, 14).requires_grad_()
    kernel = torch.complex(_randn(8, 14, 8, seed=1), _randn(8, 14, 8, seed=2)).requires_grad_()
    out = spectral_product(x, kernel, (14, 14))
    grad = torch.ones_like(out)
    counted = count_ops(lambda: out.backward(grad))[1]
    assert counted['_fft_r2c'] == 1 and counted['_fft_c2r'] == 1, counted
    assert counted['_fft_c2c'] == 0 and counted['copy_'] == 0, counted
    assert sum(counted.values()) == 8, counted  # + 2 conjugates, 2 products, sum, doubling


@pytest.mark.parametrize('grid', [(14, 14), (10, 12)])
def test_a_filters_gradient_arrives_in_its_parameters_layout(grid):
    """The filter's kernel is a channels-first view of its channels-last parameter: its
    gradient is written through the view's strides, so it reaches the parameter with no
    copy into its layout - at the filter's own grid the backward of its update copies
    nothing but the spectrum's conjugate (the tokens' gradient left out) - and it equals
    the gradient of the same computation under autograd's transforms, also for a filter
    resized to another grid."""
    import torch._dynamo

    from tools.benchmarking.ops import count_ops

    torch.manual_seed(0)
    layer = SpectralFilter2d(8, (14, 14)).double()
    x = _randn(2, *grid, 8, dtype=torch.float64)  # the tokens' gradient is not this test's
    update = layer.update(x)
    weights = torch.linspace(-1, 1, update.numel(), dtype=update.dtype).view_as(update)
    counted = count_ops(lambda: (update * weights).sum().backward())[1]
    if grid == (14, 14):  # a resized filter's gradient goes back through the resize
        assert counted['clone'] == 1 and counted['copy_'] == 0, counted
    assert layer.weight.grad.is_contiguous()
    got = layer.weight.grad.clone()
    layer.weight.grad = None
    kernel = layer.frequency_filter(grid, dtype=torch.float64)
    spectrum = torch.fft.rfft2(x, dim=(1, 2), norm='ortho')
    filtered = torch.fft.irfft2(spectrum * kernel, s=grid, dim=(1, 2), norm='ortho')
    ((filtered * layer.gamma + layer.beta) * weights).sum().backward()
    torch.testing.assert_close(got, layer.weight.grad, rtol=1e-10, atol=1e-12)
    torch._dynamo.reset()  # and its backward traces with the forward: one graph
    assert torch._dynamo.explain(layer.update)(x).graph_break_count == 0
