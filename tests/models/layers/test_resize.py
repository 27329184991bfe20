"""Bilinear resizing as matrix products (mmwst.models.layers.resize): the values and
gradients of ``F.interpolate(mode='bilinear', align_corners=False)``, on both paths (one
Kronecker product, or the two axes one after the other), in both layouts, with the
matrices built once and in autocast's precision."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from mmwst.models.layers import resize
from mmwst.models.layers.resize import axis_weights, bilinear_weights, resize_map, resize_tokens
from tools.benchmarking.ops import count_ops

# up (integer and not), down (integer and not), one axis only, to and from one pixel
GRIDS = [(4, 5), (14, 14), (7, 3), (1, 1)]
SIZES = [(8, 10), (56, 56), (9, 4), (3, 2), (5, 7), (1, 1), (14, 3)]


@pytest.fixture(params=['kronecker', 'axes'])
def path(request, monkeypatch):
    """Each case on both paths: the threshold at its default, or at 0 (every resize
    axis by axis)."""
    monkeypatch.setattr(resize, '_CACHE', type(resize._CACHE)())
    if request.param == 'axes':
        monkeypatch.setattr(resize, 'KRONECKER_MAX_ENTRIES', 0)
    return request.param


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


def test_values_and_gradients_equal_interpolate(path):
    torch.manual_seed(0)
    for (h, w), size in itertools.product(GRIDS, SIZES):
        x = torch.randn(2, 3, h, w, requires_grad=True)
        ref = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        grad = torch.randn_like(ref)
        (ref_grad,) = torch.autograd.grad(ref, x, grad)

        out = resize_map(x, size)
        (out_grad,) = torch.autograd.grad(out, x, grad)
        assert out.shape == ref.shape
        assert _rel(out, ref) < 1e-6 and _rel(out_grad, ref_grad) < 1e-5, ((h, w), size)

        # channels-last in, tokens out: (B, h, w, C) -> (B, H * W, C)
        x_last = x.detach().permute(0, 2, 3, 1).contiguous().requires_grad_()
        tokens = resize_tokens(x_last, size)
        (tokens_grad,) = torch.autograd.grad(tokens, x_last, grad.flatten(2).transpose(1, 2))
        assert _rel(tokens, ref.flatten(2).transpose(1, 2)) < 1e-6, ((h, w), size)
        assert _rel(tokens_grad, ref_grad.permute(0, 2, 3, 1)) < 1e-5, ((h, w), size)


def test_float64_equals_interpolate_to_its_precision(path):
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    for size in [(9, 4), (3, 2), (21, 11)]:
        ref = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        torch.testing.assert_close(resize_map(x, size), ref, rtol=1e-12, atol=1e-12)


def test_the_paths_are_chosen_by_the_kronecker_matrix_size(monkeypatch):
    monkeypatch.setattr(resize, '_CACHE', type(resize._CACHE)())
    cpu, f32 = torch.device('cpu'), torch.float32
    (kron,) = bilinear_weights((14, 14), (56, 56), cpu, f32)  # 196 x 3136 <= 2^20
    assert kron.shape == (56 * 56, 14 * 14)
    rows, cols = bilinear_weights((32, 32), (128, 128), cpu, f32)  # 1024 x 16384 > 2^20
    assert rows.shape == (128, 32) and cols.shape == (128, 32)
    # the Kronecker matrix is the two axes' product, row-major on both sides
    rows, cols = axis_weights(14, 56), axis_weights(14, 56)
    torch.testing.assert_close(kron, torch.kron(rows, cols))


def test_axis_weights_are_two_taps_that_sum_to_one():
    for n_in, n_out in [(4, 8), (7, 3), (5, 5), (1, 6), (6, 1)]:
        weights = axis_weights(n_in, n_out)
        assert weights.shape == (n_out, n_in)
        torch.testing.assert_close(weights.sum(1), torch.ones(n_out))
        assert ((weights != 0).sum(1) <= 2).all() and (weights >= 0).all()
    # 2x up: the source of output i is (i + 0.5) / 2 - 0.5, clamped at the first pixel
    expected = torch.tensor([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    torch.testing.assert_close(axis_weights(2, 4), expected)


def test_an_unchanged_grid_is_passed_through():
    x = torch.randn(2, 3, 4, 5)
    assert resize_map(x, (4, 5)) is x
    tokens = resize_tokens(x.permute(0, 2, 3, 1).contiguous(), (4, 5))
    torch.testing.assert_close(tokens, x.flatten(2).transpose(1, 2))


def test_the_matrices_are_built_once_and_the_products_are_the_only_kernels(path):
    """After the first call a resize runs its products alone: one forward and one
    backward kernel on the Kronecker path, two each axis by axis - the matrices come
    from the cache (no arange, comparison or cast per call)."""
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    resize_map(x, (12, 12)).sum().backward()  # builds and keeps the matrices
    total, ops = count_ops(lambda: resize_map(x, (12, 12)))
    products = 1 if path == 'kronecker' else 2
    assert total == products and set(ops) <= {'mm', 'bmm'}, ops
    out = resize_map(x, (12, 12))
    _, ops = count_ops(lambda: torch.autograd.grad(out, x, torch.ones_like(out)))
    assert ops['mm'] + ops['bmm'] == products, ops


def test_under_autocast_the_matrices_are_kept_in_its_precision(path):
    """Under bf16 autocast the matrices are bf16, so that the only cast a resize
    launches is its float32 input's, and the result equals interpolating in float32 to
    bf16 rounding."""
    x = torch.randn(2, 4, 6, 6)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        resize_map(x, (12, 12))
        _, ops = count_ops(lambda: resize_map(x, (12, 12)))
        out = resize_map(x, (12, 12))
    assert ops['_to_copy'] == 1 and out.dtype == torch.bfloat16, ops
    assert all(m.dtype == torch.bfloat16 for k, v in resize._CACHE.items() for m in v)
    ref = F.interpolate(x, size=(12, 12), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_the_cache_keeps_the_last_64_shapes(monkeypatch):
    monkeypatch.setattr(resize, '_CACHE', type(resize._CACHE)())
    x = torch.randn(1, 1, 2, 2)
    for n in range(3, 3 + 70):
        resize_map(x, (n, 2))
    assert len(resize._CACHE) == 64
    assert ((2, 2), (72, 2), torch.device('cpu'), torch.float32) in resize._CACHE
    assert ((2, 2), (3, 2), torch.device('cpu'), torch.float32) not in resize._CACHE


def test_compiles_in_one_graph_with_the_matrices_built_inside(path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    x = torch.randn(2, 3, 5, 7, requires_grad=True)
    compiled = torch.compile(lambda t: resize_map(t, (11, 13)), backend='aot_eager', fullgraph=True)
    out = compiled(x)
    ref = F.interpolate(x, size=(11, 13), mode='bilinear', align_corners=False)
    assert _rel(out, ref) < 1e-6
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), x)
    assert _rel(grad, ref_grad) < 1e-5
    assert counters['stats']['unique_graphs'] == 1
