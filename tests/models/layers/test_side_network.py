"""The side network's memory-lean forms compute what the plain formulas compute: the
cross-attention over a few keys, the MLP that recomputes its GELU, the Haar transform
without a convolution - same values, same gradients, less kept for the backward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmwst.models.layers import DWT2d, IDWT2d
from mmwst.models.layers.side_network import MetaCrossAttention, SideBlock, gelu_linear


def _saved(fn, *args):
    """Shapes of the tensors autograd keeps while running ``fn(*args)``."""
    shapes = []

    def pack(tensor):
        shapes.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn(*args)
    return out, shapes


def _plain_attention(attn, x, kv):
    """The textbook form: full queries, fused attention, output projection."""
    B, N, C = x.shape
    heads = attn.num_heads

    def split(t):  # (B, n, C) -> (B, heads, n, C / heads)
        return t.reshape(B, t.shape[1], heads, C // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(attn.q(x)), split(attn.k(kv)), split(attn.v(kv)))
    return attn.proj(out.transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize(('dim', 'heads', 'keys'), [(64, 2, 2), (48, 4, 3), (16, 1, 2)])
@pytest.mark.parametrize('qkv_bias', [True, False])
def test_cross_attention_equals_the_plain_form_with_gradients(dim, heads, keys, qkv_bias):
    torch.manual_seed(0)
    attn = MetaCrossAttention(dim, heads, qkv_bias=qkv_bias).double()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 40, dim, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(3, keys, dim, dtype=torch.float64, requires_grad=True)
    ours, plain = attn(x, kv), _plain_attention(attn, x, kv)
    torch.testing.assert_close(ours, plain)
    grad = torch.randn_like(ours)
    inputs = [x, kv, *attn.parameters()]
    for a, b in zip(
        torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(plain, inputs, grad)
    ):
        torch.testing.assert_close(a, b)


def test_cross_attention_keeps_no_token_wide_query_or_output():
    attn = MetaCrossAttention(64, 2)
    x = torch.randn(2, 100, 64, requires_grad=True)
    kv = torch.randn(2, 2, 64, requires_grad=True)
    _, shapes = _saved(attn, x, kv)
    token_wide = [s for s in shapes if s[:2] == (2, 100) and s[-1] == 64]
    assert len(token_wide) <= 1, shapes  # only its input, for the query weight's gradient
    _, plain = _saved(_plain_attention, attn, x, kv)
    assert (
        sum(torch.Size(s).numel() for s in shapes) < sum(torch.Size(s).numel() for s in plain) / 2
    )


def test_gelu_linear_equals_linear_of_gelu_and_keeps_only_its_input():
    torch.manual_seed(0)
    hidden = torch.randn(4, 10, 32, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 32, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8, dtype=torch.float64, requires_grad=True)
    ours, shapes = _saved(gelu_linear, hidden, weight, bias)
    plain = F.linear(F.gelu(hidden), weight, bias)
    torch.testing.assert_close(ours, plain, rtol=0, atol=0)
    grad = torch.randn_like(ours)
    for a, b in zip(
        torch.autograd.grad(ours, [hidden, weight, bias], grad),
        torch.autograd.grad(plain, [hidden, weight, bias], grad),
    ):
        torch.testing.assert_close(a, b)
    # the GELU's input, not also its output (the plain form keeps both)
    assert [torch.Size(s).numel() for s in shapes].count(4 * 10 * 32) == 1
    assert torch.autograd.gradcheck(
        gelu_linear, (hidden[:1, :2, :5].detach().requires_grad_(), weight[:3, :5], bias[:3])
    )


def test_side_block_in_bfloat16_autocast_trains_float32_weights():
    block = SideBlock(32, 2)
    x, kv, fine = torch.randn(2, 30, 32), torch.randn(2, 2, 32), torch.randn(2, 30, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = block(x, kv, fine)
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in block.parameters())


def _saved_storages(fn, *args):
    """The storages of the tensors autograd keeps while running ``fn(*args)``."""
    storages = []

    def pack(tensor):
        storages.append(tensor.untyped_storage().data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(*args)
    return storages


def test_haar_transforms_keep_nothing_for_the_backward_pass():
    """Haar keeps only its fixed 4x4 matrix (a view of the module's filter buffer), no
    activation; a convolution (longer filters) keeps its input."""
    x = torch.randn(2, 3, 8, 6, requires_grad=True)
    bands = torch.randn(2, 12, 4, 3, requires_grad=True)
    dwt, idwt = DWT2d('haar'), IDWT2d('haar')
    for module, tensor in ((dwt, x), (idwt, bands)):
        kept = _saved_storages(module, tensor)
        assert set(kept) <= {module.filters.untyped_storage().data_ptr()}, kept
    longer = DWT2d('db2')
    kept = _saved_storages(longer, x)
    assert set(kept) - {longer.filters.untyped_storage().data_ptr()}


@pytest.mark.parametrize('linear', [True, False])
def test_norm_then_matmul_equals_the_plain_form_and_keeps_the_norms_input(linear):
    from mmwst.models.layers.side_network import norm_then_matmul

    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(16).double()
    torch.nn.init.normal_(norm.weight, 1.0, 0.2), torch.nn.init.normal_(norm.bias, 0.0, 0.2)
    x = torch.randn(3, 20, 16, dtype=torch.float64, requires_grad=True)
    if linear:
        rhs = torch.randn(24, 16, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(24, dtype=torch.float64, requires_grad=True)
        inputs = [x, rhs, bias, norm.weight, norm.bias]
        plain = F.linear(norm(x), rhs, bias)
    else:
        rhs = torch.randn(3, 16, 4, dtype=torch.float64, requires_grad=True)
        bias = None
        inputs = [x, rhs, norm.weight, norm.bias]
        plain = norm(x) @ rhs
    ours, shapes = _saved(norm_then_matmul, x, norm, rhs, bias, linear)
    torch.testing.assert_close(ours, plain)
    grad = torch.randn_like(ours)
    for a, b in zip(
        torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(plain, inputs, grad)
    ):
        torch.testing.assert_close(a, b)
    assert [torch.Size(s).numel() for s in shapes].count(3 * 20 * 16) == 1  # x, not LN(x)


def test_side_block_equals_its_formula_with_gradients():
    """``x + CrossAttn(LN1(x), kv)``, ``+ fine``, ``+ MLP(LN2(x))``, written plainly."""
    torch.manual_seed(0)
    block = SideBlock(32, 2).double()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 30, 32, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(2, 2, 32, dtype=torch.float64, requires_grad=True)
    fine = torch.randn(2, 30, 32, dtype=torch.float64, requires_grad=True)

    def plain(x, kv, fine):
        y = x + _plain_attention(block.attn, block.norm1(x), kv) + fine
        return y + block.mlp(block.norm2(y))

    ours, expected = block(x, kv, fine), plain(x, kv, fine)
    torch.testing.assert_close(ours, expected)
    grad = torch.randn_like(ours)
    inputs = [x, kv, fine, *block.parameters()]
    for a, b in zip(
        torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(expected, inputs, grad)
    ):
        torch.testing.assert_close(a, b)


def test_a_stage_copy_carries_other_weights_in_their_shapes_and_back():
    """``stage_weights(..., tensors=...)``: weights with a multiple of the width elements
    ride in the stage's one copy and come back in their own shapes, cast where a dtype
    is given, with their gradients; a tensor that does not fit the rows is refused."""
    from mmwst.models.layers.side_keys import stage_weights
    from mmwst.models.layers.side_network import ConvStem, OverlapPatchEmbed

    torch.manual_seed(0)
    attns = [MetaCrossAttention(8, 2) for _ in range(2)]
    stem, embed = ConvStem(8), OverlapPatchEmbed(8, 8)
    carried = [*stem.product_weights(), *embed.product_weights()]
    copy = stage_weights(attns, dtype=torch.bfloat16, tensors=carried)
    assert [t.shape for t in copy.tensors] == [t.shape for t in carried]
    assert all(c.dtype == torch.bfloat16 for c in copy.tensors)
    assert all(torch.equal(c, t.to(torch.bfloat16)) for c, t in zip(copy.tensors, carried))
    # the embeddings run with the given weights as with their own
    image = torch.randn(2, 3, 16, 12)
    tokens, hw = stem(image, [t.float() for t in copy.tensors[:2]])
    expected = stem(image, [t.to(torch.bfloat16).float() for t in stem.product_weights()])
    torch.testing.assert_close(tokens, expected[0], rtol=0, atol=0)
    assert hw == (4, 3) and stem(image)[0].shape == tokens.shape
    fmap = torch.randn(2, 8, 4, 3)
    plain = embed(fmap)[0]
    torch.testing.assert_close(embed(fmap, embed.product_weights())[0], plain, rtol=0, atol=0)
    # gradients reach each carried parameter in its own shape
    sum((c.float() * (i + 1)).sum() for i, c in enumerate(copy.tensors)).backward()
    for i, t in enumerate(carried):
        torch.testing.assert_close(t.grad, torch.full_like(t, i + 1.0), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'multiple of the width 8 elements, got shape \(3, 5\)'):
        stage_weights(attns, tensors=[torch.zeros(3, 5)])
