import numpy as np
import pytest
import pywt
import torch

from mmwst.models.layers import DWT2d, IDWT2d, dwt2d, idwt2d

ORTHOGONAL = ['haar', 'db2', 'sym4']


def _randn(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)


def test_haar_values_on_hand_made_patches():
    # Three channels, one 2x2 patch [[a, b], [c, d]] each.
    patches = torch.tensor(
        [
            [[1.0, 2.0], [3.0, 5.0]],
            [[-4.0, 0.0], [2.0, 7.0]],
            [[0.5, -1.5], [2.5, 8.0]],
        ]
    )
    x = patches.unsqueeze(0)  # (1, 3, 2, 2)
    a, b, c, d = patches[:, 0, 0], patches[:, 0, 1], patches[:, 1, 0], patches[:, 1, 1]
    expected = torch.cat(
        [
            (a + b + c + d) / 2,  # LL of channels 0, 1, 2
            (a + b - c - d) / 2,  # LH
            (a - b + c - d) / 2,  # HL
            (a - b - c + d) / 2,  # HH
        ]
    ).reshape(1, 12, 1, 1)
    y = DWT2d()(x)
    assert y.shape == (1, 12, 1, 1)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    # Channel 0 by hand: a=1, b=2, c=3, d=5.
    torch.testing.assert_close(y[0, [0, 3, 6, 9], 0, 0], torch.tensor([5.5, -2.5, -1.5, 0.5]))
    torch.testing.assert_close(IDWT2d()(y), x, rtol=0, atol=1e-6)


def test_haar_band_layout_on_larger_image():
    x = _randn(2, 3, 4, 6)
    y = dwt2d(x)
    assert y.shape == (2, 12, 2, 3)
    # LH of channel 1 at output pixel (1, 2) uses the input patch rows 2:4, cols 4:6.
    patch = x[0, 1, 2:4, 4:6]
    expected = (patch[0].sum() - patch[1].sum()) / 2
    torch.testing.assert_close(y[0, 3 + 1, 1, 2], expected)


@pytest.mark.parametrize('wavelet', ['haar', 'db2', 'sym4', 'coif1'])
@pytest.mark.parametrize('size', [(8, 12), (2, 4), (6, 2)])
def test_matches_pywavelets_periodization(wavelet: str, size: tuple[int, int]):
    image = _randn(*size, seed=1).numpy()
    c_a, (c_h, c_v, c_d) = pywt.dwt2(image, wavelet, mode='periodization')
    y = dwt2d(torch.from_numpy(image)[None, None], wavelet)[0].numpy()
    for band, reference in enumerate([c_a, c_h, c_v, c_d]):
        np.testing.assert_allclose(y[band], reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize('wavelet', ORTHOGONAL)
@pytest.mark.parametrize('size', [(8, 8), (6, 10), (12, 4), (2, 2)])
def test_perfect_reconstruction_and_energy(wavelet: str, size: tuple[int, int]):
    dwt, idwt = DWT2d(wavelet), IDWT2d(wavelet)
    x = _randn(2, 3, *size)
    y = dwt(x)
    assert y.shape == (2, 12, size[0] // 2, size[1] // 2)
    assert y.dtype == torch.float64
    torch.testing.assert_close(idwt(y), x, rtol=0, atol=1e-10)
    torch.testing.assert_close(y.square().sum(), x.square().sum(), rtol=1e-10, atol=0)
    # The other direction: the transform is a bijection on the coefficients too.
    coefficients = _randn(2, 12, size[0] // 2, size[1] // 2, seed=2)
    torch.testing.assert_close(dwt(idwt(coefficients)), coefficients, rtol=0, atol=1e-10)


def test_functional_and_module_agree():
    x = _randn(1, 2, 8, 6, dtype=torch.float32)
    torch.testing.assert_close(dwt2d(x, 'db2'), DWT2d('db2')(x))
    y = dwt2d(x, 'db2')
    torch.testing.assert_close(idwt2d(y, 'db2'), IDWT2d('db2')(y))


def test_longer_filters_differ_from_haar():
    x = _randn(1, 1, 8, 8)
    assert not torch.allclose(dwt2d(x, 'db2'), dwt2d(x, 'haar'))


def test_gradcheck():
    x = _randn(1, 2, 4, 6).requires_grad_()
    assert torch.autograd.gradcheck(DWT2d('db2'), (x,))
    y = _randn(1, 8, 2, 3).requires_grad_()
    assert torch.autograd.gradcheck(IDWT2d('db2'), (y,))
    assert torch.autograd.gradcheck(IDWT2d('haar'), (y,))


@pytest.mark.parametrize('dtype,atol', [(torch.bfloat16, 5e-2), (torch.float16, 5e-3)])
def test_low_precision_matches_float32(dtype: torch.dtype, atol: float):
    dwt, idwt = DWT2d('db2'), IDWT2d('db2')
    x = _randn(2, 3, 8, 8, dtype=torch.float32).to(dtype)
    y = dwt(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), dwt(x.float()), rtol=0, atol=atol)
    x_rec = idwt(y)
    assert x_rec.dtype == dtype
    torch.testing.assert_close(x_rec.float(), idwt(y.float()), rtol=0, atol=atol)
    torch.testing.assert_close(x_rec.float(), x.float(), rtol=0, atol=2 * atol)


def test_filters_are_fixed_buffers():
    dwt = DWT2d('sym4')
    assert list(dwt.parameters()) == []
    assert dwt.state_dict() == {}
    assert dwt.filters.shape == (4, 1, 8, 8)
    assert dwt.filters.dtype == torch.float32
    assert not dwt.filters.requires_grad
    # Loading an empty state dict strictly works: nothing is expected.
    dwt.load_state_dict({}, strict=True)
    # Dtype casts of the module keep exact float32 coefficients.
    reference = dwt.filters.clone()
    dwt.half()
    assert dwt.filters.dtype == torch.float32
    torch.testing.assert_close(dwt.filters, reference, rtol=0, atol=0)


@pytest.mark.parametrize('size', [(5, 4), (4, 7), (3, 3)])
def test_odd_size_raises(size: tuple[int, int]):
    with pytest.raises(ValueError, match='even'):
        DWT2d()(torch.zeros(1, 1, *size))


@pytest.mark.parametrize('wavelet', ['bior2.2', 'rbio1.3'])
def test_non_orthogonal_wavelet_raises(wavelet: str):
    with pytest.raises(ValueError, match='not orthogonal'):
        DWT2d(wavelet)
    with pytest.raises(ValueError, match='not orthogonal'):
        dwt2d(torch.zeros(1, 1, 2, 2), wavelet)


@pytest.mark.parametrize('wavelet', ['no_such_wavelet', 'morl', 'dmey'])
def test_unknown_or_unsupported_wavelet_raises(wavelet: str):
    with pytest.raises(ValueError, match=wavelet):
        IDWT2d(wavelet)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match='multiple of 4'):
        IDWT2d()(torch.zeros(1, 6, 2, 2))
    with pytest.raises(ValueError, match='4-D'):
        DWT2d()(torch.zeros(3, 4, 4))


def test_float16_fallback_without_cpu_half_conv(monkeypatch: pytest.MonkeyPatch):
    from mmwst.models.layers import wavelet

    monkeypatch.setattr(wavelet, '_cpu_half_conv_supported', lambda: False)
    x = _randn(1, 2, 4, 4, dtype=torch.float32).half()
    y = DWT2d('db2')(x)
    assert y.dtype == torch.float16
    torch.testing.assert_close(y, dwt2d(x.float(), 'db2').half(), rtol=0, atol=0)
    assert idwt2d(y, 'db2').dtype == torch.float16
