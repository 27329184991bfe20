"""Test helper: write mmpretrain ViT weights in the Google ``vit_jax`` npz layout.

The inverse of mmwst's ``'npz'`` conversion, so that the tests can make a Google-layout
file from a small random model and check that mmwst reads it back exactly. Not part of
the package: nothing in mmwst writes npz files.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mmwst.models.backbones.convert import _MM_BLOCK_RE, _examples


def vit_to_npz(state_dict: Mapping[str, Tensor], num_heads: int) -> dict[str, np.ndarray]:
    """Write mmpretrain ViT weights in the Google ``vit_jax`` npz layout.

    The inverse of the ``'npz'`` conversion (``np.savez(path, **result)`` writes a file
    that :func:`load_vit_weights` reads back to the same tensors). Uses the vit_jax
    names: ``LayerNorm_0``, ``MultiHeadDotProductAttention_1``, ``LayerNorm_2``,
    ``MlpBlock_3/Dense_{0,1}``, ``Transformer/encoder_norm``.

    Args:
        state_dict (Mapping[str, Tensor]): mmpretrain ``VisionTransformer`` weights (a
            ``backbone.`` prefix is allowed).
        num_heads (int): Attention heads; the Google layout stores q/k/v kernels as
            ``(D, heads, head_dim)``, which the weights alone do not determine.

    Returns:
        dict[str, np.ndarray]: Arrays keyed by Google names.

    Raises:
        ValueError: A weight has no place in the Google layout (layer scale,
            ``pre_norm``, ...) or ``num_heads`` does not divide the width.
    """
    flat = {
        (k[len('backbone.') :] if k.startswith('backbone.') else k): v
        for k, v in state_dict.items()
    }

    def arr(name: str) -> np.ndarray:
        tensor = flat[name].detach().cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy().copy()

    out: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(name: str, target: str, array: np.ndarray | None = None) -> None:
        if name in flat:
            out[target] = arr(name) if array is None else array
            used.add(name)

    if 'patch_embed.projection.weight' not in flat:
        raise ValueError(
            'not mmpretrain ViT weights: no patch_embed.projection.weight; '
            f'keys: {_examples(list(flat))}'
        )
    take(
        'patch_embed.projection.weight',
        'embedding/kernel',
        arr('patch_embed.projection.weight').transpose(2, 3, 1, 0).copy(),
    )
    take('patch_embed.projection.bias', 'embedding/bias')
    take('cls_token', 'cls')
    take('pos_embed', 'Transformer/posembed_input/pos_embedding')
    take('ln1.weight', 'Transformer/encoder_norm/scale')
    take('ln1.bias', 'Transformer/encoder_norm/bias')

    embed_dims = flat['patch_embed.projection.weight'].shape[0]
    if num_heads <= 0 or embed_dims % num_heads:
        raise ValueError(f'num_heads={num_heads} does not divide the width {embed_dims}')
    head_dims = embed_dims // num_heads
    indices = sorted({int(m.group(1)) for k in flat if (m := _MM_BLOCK_RE.match(k))})
    for i in indices:
        src = f'layers.{i}.'
        dst = f'Transformer/encoderblock_{i}/'
        for norm, google in (('ln1', 'LayerNorm_0'), ('ln2', 'LayerNorm_2')):
            take(f'{src}{norm}.weight', f'{dst}{google}/scale')
            take(f'{src}{norm}.bias', f'{dst}{google}/bias')
        attn = f'{dst}MultiHeadDotProductAttention_1/'
        qkv = arr(f'{src}attn.qkv.weight')
        used.add(f'{src}attn.qkv.weight')
        for j, part in enumerate(('query', 'key', 'value')):
            rows = qkv[j * embed_dims : (j + 1) * embed_dims]  # (out, in)
            out[f'{attn}{part}/kernel'] = rows.T.reshape(embed_dims, num_heads, head_dims).copy()
        if f'{src}attn.qkv.bias' in flat:
            bias = arr(f'{src}attn.qkv.bias')
            used.add(f'{src}attn.qkv.bias')
            for j, part in enumerate(('query', 'key', 'value')):
                out[f'{attn}{part}/bias'] = (
                    bias[j * embed_dims : (j + 1) * embed_dims].reshape(num_heads, head_dims).copy()
                )
        take(
            f'{src}attn.proj.weight',
            f'{attn}out/kernel',
            arr(f'{src}attn.proj.weight').T.reshape(num_heads, head_dims, -1).copy(),
        )
        take(f'{src}attn.proj.bias', f'{attn}out/bias')
        for layer, dense in (('ffn.layers.0.0', 'Dense_0'), ('ffn.layers.1', 'Dense_1')):
            name = f'{src}{layer}.weight'
            if name in flat:
                take(name, f'{dst}MlpBlock_3/{dense}/kernel', arr(name).T.copy())
            take(f'{src}{layer}.bias', f'{dst}MlpBlock_3/{dense}/bias')
    left = sorted(set(flat) - used)
    if left:
        raise ValueError(f'these weights have no place in the Google npz layout: {_examples(left)}')
    return out
