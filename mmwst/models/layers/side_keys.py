"""The key side of the side network's cross-attentions, for all blocks of a stage at once.

A side block's cross-attention (:class:`~.side_network.MetaCrossAttention`) reads the
ViT only through its few key tokens; every product that does not involve the side
tokens depends on those keys and the block's weights alone, so for the ``k`` blocks of a
stage it runs once, batched: the weights in one copy (:func:`stage_weights`), the keys
paired for the key and value projections (:func:`paired_keys`), the scores' right-hand
sides, query-bias offsets and output rows of every block (:func:`key_terms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .side_network import MetaCrossAttention


class StageWeights(NamedTuple):
    """The weights of ``k`` cross-attentions of one width in one copy
    (:func:`stage_weights`), cut into its parts by one ``split``."""

    query_out: Tensor  # [W_q, W_p^T] of every block: (2k, C, C)
    key_value: Tensor  # [W_k^T, W_v^T] of every block: (2k, C, C)
    key_value_bias: Tensor | None  # [b_k, b_v] of every block (2k, 1, C), or None
    query_bias: Tensor | None  # b_q of every block (k, C, 1), or None
    proj_bias: Tensor  # (k, C)
    extra: tuple[Tensor, ...]  # the caller's vector groups, each (k, C)
    #: with ``mlps``: each block's ``(W_1, b_1, W_2, b_2)`` as its MLP's Linears read them
    mlp: tuple[tuple[Tensor, Tensor, Tensor, Tensor], ...] = ()
    #: the caller's ``tensors``, each in its own shape, in the copy's precision
    tensors: tuple[Tensor, ...] = ()


def stage_weights(
    attns: Sequence[MetaCrossAttention],
    extra: Sequence[Sequence[Tensor]] = (),
    mlps: Sequence[tuple[nn.Linear, nn.Linear]] = (),
    dtype: torch.dtype | None = None,
    tensors: Sequence[Tensor] = (),
) -> StageWeights:
    """Copy the weights of ``k`` cross-attentions (and the caller's ``extra`` groups of
    ``k`` vectors of their width, e.g. LayerNorm weights) into one tensor, rows
    ``[W_q, W_p^T]``, ``[W_k, W_v]``, then the vectors, for :func:`key_terms`.

    ``dtype`` (autocast's lower precision, under autocast): everything that feeds a
    matrix product - the attentions' weights and biases and, with ``mlps`` (the blocks'
    two MLP Linears), the MLPs' - is cast to it in one copy instead of one cast per
    weight and per product, and each gradient comes back through one cast; ``extra``
    keeps the parameters' type (norms run in float32 under autocast). The MLP weights
    ride as rows of the attentions' width: ``W_1`` (H, C) as it is, ``W_2`` (C, H) read
    as H rows of C (its own memory, no transpose), the biases as rows where ``C``
    divides their length.

    ``tensors``: more weights of the stage that feed products (its patch embedding's
    convolution, its bridges), each with a multiple of ``C`` elements; they ride in the
    same copy as rows of ``C`` (their own memory, reshaped) and come back in their own
    shapes as ``StageWeights.tensors``, so that under autocast they too are cast with
    the rest, their gradients cast back with the rest.
    """
    k, dim = len(attns), attns[0].proj.weight.shape[0]
    biased = attns[0].q.bias is not None
    vectors = [[a.proj.bias for a in attns]]
    if biased:
        vectors = [
            [b for a in attns for b in (a.k.bias, a.v.bias)],
            [a.q.bias for a in attns],
            *vectors,
        ]
    rows = [w for a in attns for w in (a.q.weight, a.proj.weight)]  # W_p: copied transposed
    rows += [w for a in attns for w in (a.k.weight, a.v.weight)]
    mlp_rows, mlp_biases = [], []
    hidden = mlps[0][0].weight.shape[0] if mlps else 0
    rowed = len(mlps) > 0 and hidden % dim == 0 and all(f.bias is not None for m in mlps for f in m)
    for fc1, fc2 in mlps:
        mlp_rows += [fc1.weight, fc2.weight.reshape(hidden, dim)]  # (H, C) each, views
        if rowed:
            mlp_biases += [fc1.bias.reshape(hidden // dim, dim), fc2.bias.unsqueeze(0)]
    for t in tensors:
        if t.numel() % dim:
            raise ValueError(
                f'a tensor that joins the stage copy needs a multiple of the width {dim} '
                f'elements, got shape {tuple(t.shape)}'
            )
    carried = [t.reshape(-1, dim) for t in tensors]  # views of contiguous parameters
    low = [*rows, *mlp_rows, *(v.unsqueeze(0) for g in vectors for v in g), *mlp_biases]
    low += carried
    high = [v.unsqueeze(0) for g in extra for v in g]
    sizes = [2 * k * dim, 2 * k * dim, *(w.shape[0] for w in mlp_rows)]
    sizes += [len(g) for g in vectors] + [b.shape[0] for b in mlp_biases]
    sizes += [c.shape[0] for c in carried]
    copied = _StageCopy.apply(k, *low, *high)  # (4kC + MLP rows + vectors, C)
    rest = [len(g) for g in extra]
    if dtype is not None and dtype != copied.dtype:
        matmul, kept = copied.split([sum(sizes), sum(rest)])
        parts = [*matmul.to(dtype).split(sizes), *(kept.split(rest) if rest else ())]
    else:  # one split: its backward joins the gradients in one kernel
        parts = list(copied.split(sizes + rest))
    query_out = parts.pop(0).reshape(2 * k, dim, dim)
    key_value = parts.pop(0).reshape(2 * k, dim, dim).transpose(1, 2)
    weights = [parts.pop(0) for _ in mlp_rows]
    kv_bias = q_bias = None
    if biased:
        kv_bias = parts.pop(0).unsqueeze(1)
        q_bias = parts.pop(0).unsqueeze(2)
    proj_bias = parts.pop(0)
    mlp = []
    for j, (fc1, fc2) in enumerate(mlps):
        w1, w2 = weights[2 * j], weights[2 * j + 1].reshape(fc2.weight.shape)
        b1, b2 = fc1.bias, fc2.bias
        if mlp_biases:
            b1, b2 = parts.pop(0).reshape(-1), parts.pop(0).reshape(-1)
        mlp.append((w1, b1, w2, b2))
    own = tuple(parts.pop(0).reshape(t.shape) for t in tensors)
    return StageWeights(
        query_out, key_value, kv_bias, q_bias, proj_bias, tuple(parts), tuple(mlp), own
    )


class _StageCopy(torch.autograd.Function):
    """``torch.cat`` of a stage's rows (:func:`stage_weights`), whose first ``2k``
    pieces are the blocks' ``W_q`` and ``W_p`` in turn, each ``W_p`` copied transposed.

    The backward hands every gradient back in its parameter's own layout. Through
    autograd's own route (a transpose view of each ``W_p`` in a plain ``cat``) each
    ``W_p``'s gradient would arrive transposed, and the accumulation of gradients into
    ``.grad`` would copy it back, one kernel per block; here the ``k`` of a stage are
    transposed in one copy."""

    @staticmethod
    def forward(ctx, k: int, *pieces: Tensor) -> Tensor:
        rows = [p.t() if j < 2 * k and j % 2 else p for j, p in enumerate(pieces)]
        ctx.k, ctx.sizes = k, [r.shape[0] for r in rows]
        return torch.cat(rows)

    @staticmethod
    def backward(ctx, grad: Tensor):
        k, sizes = ctx.k, ctx.sizes
        grads = list(grad.split(sizes))
        if any(ctx.needs_input_grad[2 : 2 + 2 * k : 2]):  # the W_p (inputs 2, 4, ...)
            dim = sizes[0]
            # rows (2j + 1) C ... (2j + 2) C hold W_p^T of block j: (k, C, C) as W_p's
            pairs = grad[: 2 * k * dim].unflatten(0, (k, 2, dim))
            grads[1 : 2 * k : 2] = pairs[:, 1].transpose(1, 2).contiguous().unbind(0)
        return None, *grads


def paired_keys(*parts: Tensor) -> Tensor:
    """The keys of ``k`` blocks for :func:`key_terms`, each twice (once for the key
    projection, once for the value projection): parts ``(B, n_i, k, C)`` ->
    ``(B, sum n_i, k, 2, C)`` in one concatenation, the layout in which both
    projections of all blocks are one batched product with no copy around it."""
    return torch.cat([p.unsqueeze(3).expand(-1, -1, -1, 2, -1) for p in parts], dim=1)


class KeyTerms(NamedTuple):
    """What ``k`` side blocks' cross-attentions need from their keys, one entry per block
    (:func:`key_terms`): the scores of block ``j`` are ``LN1(x) @ queries[j] +
    offsets[j]``, its output ``softmax(scores) @ values[j] + proj_bias[j]``."""

    queries: list[Tensor]  # (B, C, heads * M)
    offsets: list[Tensor | None]  # (B, 1, heads * M); None without query bias
    values: list[Tensor]  # (B, heads * M, C)
    proj_bias: Tensor  # (k, C)


def key_terms(
    attns: Sequence[MetaCrossAttention], kv: Tensor, weights: StageWeights | None = None
) -> KeyTerms:
    """The key side of ``k`` cross-attentions of one width at once (one side-network
    stage): every product that does not involve the side tokens, for all blocks together.

    For block ``j`` with keys ``kv_j`` (B, M, C), ``k = W_k kv + b_k``, ``v = W_v kv +
    b_v``; with ``K_h`` the keys' head-``h`` channels kept and the rest zeroed (a fixed
    head mask, which also carries ``1 / sqrt(C / heads)``), the scores' right-hand side
    is ``u = (K W_q)^T`` (C, heads * M) and the query bias' share ``K b_q``; with ``V_h``
    the same for the values, the output rows are ``V W_p^T`` (heads * M, C). With the
    blocks' weights in one copy (:func:`stage_weights`), ``k`` blocks take one batched
    product each for ``[k; v]``, for ``[u^T; V W_p^T]`` and for the query bias' share.

    Args:
        attns (Sequence[MetaCrossAttention]): The ``k`` cross-attentions (same width
            and heads).
        kv (Tensor): Their keys, layer last and paired: ``(B, M, k, 2, C)``
            (:func:`paired_keys`).
        weights (StageWeights, optional): ``stage_weights(attns)``, if the caller has
            copied them already. Defaults to None.

    Returns:
        KeyTerms: per block, the scores' right-hand side, offset and output rows.
    """
    batch, keys, k, _, dim = kv.shape
    heads = attns[0].num_heads
    w = stage_weights(attns) if weights is None else weights
    # (B, M, k, 2, C) -> (k, 2, B, M, C) -> (2k, B * M, C): a view
    flat = kv.permute(2, 3, 0, 1, 4).reshape(2 * k, batch * keys, dim)
    if w.key_value_bias is not None:
        # [k; v] of every block: (2k, B * M, C) x (2k, C, C) + (2k, 1, C)
        projected = torch.baddbmm(w.key_value_bias, flat, w.key_value)
    else:
        projected = torch.bmm(flat, w.key_value)
    # (2k, B * M, C) -> (k, 2, B, 1, M, C); times the head masks (2, 1, heads, 1, C)
    # -> per head (k, 2, B, heads, M, C) -> (2k, B * heads * M, C)
    spread = projected.reshape(k, 2, batch, 1, keys, dim) * attns[0].head_mask
    # the float32 mask promotes a product in a lower precision (autocast's): back to it
    # once here, not once at each of the two products below (and twice back)
    spread = spread.to(projected.dtype).reshape(2 * k, batch * heads * keys, dim)
    # [K_h W_q; V_h W_p^T]: (2k, B * heads * M, C) x (2k, C, C)
    parts = torch.bmm(spread, w.query_out).reshape(2 * k, batch, heads * keys, dim).unbind(0)
    offsets = [None] * k
    if w.query_bias is not None:
        # K_h b_q: (k, B * heads * M, C) x (k, C, 1) -> (k, B, 1, heads * M)
        keys_only = spread.unflatten(0, (k, 2))[:, 0]
        offsets = torch.bmm(keys_only, w.query_bias).reshape(k, batch, 1, heads * keys)
        offsets = list(offsets.unbind(0))
    return KeyTerms(
        queries=[p.transpose(1, 2) for p in parts[0::2]],  # (B, C, heads * M)
        offsets=offsets,
        values=list(parts[1::2]),
        proj_bias=w.proj_bias,
    )
