"""EVA-02 (Fang et al., 2023) as a frozen host: rotary position embeddings, SwiGLU MLPs
with an optional norm inside (sub-LN), q/k/v with biases on q and v only."""

from __future__ import annotations

import os.path as osp
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmengine.utils import to_2tuple
from mmpretrain.models.utils import SwiGLUFFN
from torch import Tensor, nn

from ...registry import MODELS
from .convert import _TIMM_TOP, _unwrap
from .vit import TunedVisionTransformer
from .weights import read_checkpoint

#: name -> (width, layers, heads); the MLP hidden width is 8/3 of the width
EVA02_ARCHS: dict[str, tuple[int, int, int]] = {
    'eva02-t': (192, 12, 3),
    'eva02-tiny': (192, 12, 3),
    'eva02-s': (384, 12, 6),
    'eva02-small': (384, 12, 6),
    'eva02-b': (768, 12, 12),
    'eva02-base': (768, 12, 12),
    'eva02-l': (1024, 24, 16),
    'eva02-large': (1024, 24, 16),
}


class GridRoPE(nn.Module):
    """2-D rotary position embedding of EVA-02, for the patch tokens of one image grid.

    Head channels come in pairs ``(2j, 2j + 1)``, each pair rotated by an angle: the
    first half of the pairs by the row position times ``T^(-i / n)``, the second half by
    the column position times the same frequencies (``n = head_dims / 4`` frequencies,
    ``i = 0..n-1``, ``T = 10000``). Positions are patch indices rescaled to a reference
    grid (the pretraining grid): row ``r`` of an ``h``-row grid sits at ``r * ref_h / h``.

    The host sets the grid once per forward pass (:meth:`set_grid`); every block's
    attention then rotates the last ``h * w`` tokens of its queries and keys - the patch
    tokens - and leaves every token in front of them (class token, registers, prompts,
    meta tokens) as it is.
    """

    def __init__(self, head_dims: int, ref_grid: tuple[int, int], theta: float = 10000.0):
        super().__init__()
        if head_dims % 4:
            raise ValueError(f'2-D RoPE needs a head width divisible by 4, got {head_dims}')
        self.head_dims = head_dims
        self.ref_grid = tuple(int(v) for v in ref_grid)
        self.theta = theta
        self.grid: tuple[int, int] | None = None
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def set_grid(self, grid: tuple[int, int]) -> None:
        self.grid = (int(grid[0]), int(grid[1]))

    def sin_cos(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(h * w, head_dims)`` sines and cosines for the current grid."""
        if self.grid is None:
            raise RuntimeError('GridRoPE.set_grid was not called before the attention ran')
        key = (self.grid, str(device))
        if key not in self._cache:
            n = self.head_dims // 4
            freqs = self.theta ** (-torch.arange(n, dtype=torch.float32) / n)
            axes = [
                torch.arange(size, dtype=torch.float32) / size * ref
                for size, ref in zip(self.grid, self.ref_grid)
            ]
            rows, cols = torch.meshgrid(*axes, indexing='ij')
            angles = torch.cat(
                [rows.reshape(-1, 1) * freqs, cols.reshape(-1, 1) * freqs], dim=1
            )  # (h*w, 2n): one angle per channel pair
            angles = angles.repeat_interleave(2, dim=1).to(device)  # (h*w, head_dims)
            self._cache[key] = (angles.sin(), angles.cos())
        return self._cache[key]

    def rotate(self, x: Tensor) -> Tensor:
        """Rotate the last ``h * w`` tokens of ``x`` ``(B, heads, N, head_dims)``."""
        sin, cos = self.sin_cos(x.device)
        count = sin.shape[0]
        front, patches = x[:, :, :-count], x[:, :, -count:]
        pairs = patches.reshape(*patches.shape[:-1], -1, 2)
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        rotated = (patches * cos + turned * sin).to(x.dtype)
        return torch.cat((front, rotated), dim=2)


class RoPEAttention(nn.Module):
    """Multi-head self-attention with EVA-02's rotary embedding of the patch tokens.

    ``qkv`` is one ``Linear`` (rows ``[q; k; v]``, the shape mmwst's tuners expect);
    EVA-02 has no key bias, so the key part of its bias is a zero from the file.
    ``norm`` (sub-LN) normalises the heads' output before ``proj`` when the file has it.
    Tuners may add key/value tokens through ``kv_fns`` (prefix tuning); they are not
    rotated.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        rope: GridRoPE,
        qkv_bias: bool = True,
        sub_ln: bool = False,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.head_dims = embed_dims // num_heads
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if sub_ln else nn.Identity()
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.rope = rope
        self.kv_fns: OrderedDict = OrderedDict()

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, heads, N, head_dims) each
        q, k = self.rope.rotate(q), self.rope.rotate(k)
        for fn in self.kv_fns.values():
            k, v = fn(x, k, v)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(self.norm(x))


class EVA02Block(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))``, then the SwiGLU MLP (``ffn``, which adds
    its own residual, as mmpretrain's FFN does)."""

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        hidden_dims: int,
        rope: GridRoPE,
        sub_ln: bool,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = RoPEAttention(embed_dims, num_heads, rope, sub_ln=sub_ln, norm_eps=norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = SwiGLUFFN(
            embed_dims=embed_dims,
            feedforward_channels=hidden_dims,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path) if drop_path > 0 else None,
            norm_cfg=dict(type='LN', eps=norm_eps) if sub_ln else None,
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return self.ffn(self.norm2(x), identity=x)


@MODELS.register_module()
class TunedEVA02(TunedVisionTransformer):
    """A frozen EVA-02 with tuners: the host of :class:`TunedVisionTransformer` (class
    token, absolute position embedding, tuners' extension points, checkpoints) with
    EVA-02's blocks (:class:`EVA02Block`): rotary position embeddings on the patch
    tokens, q/k/v with biases on q and v, SwiGLU MLPs, sub-LN when the file has it.

    Weights: timm's ``eva02_*`` state dicts (fused ``qkv`` with ``q_bias`` / ``v_bias``,
    or separate ``q_proj`` / ``k_proj`` / ``v_proj``; the packed or the separate SwiGLU),
    converted on load and checked strictly in both directions. The MIM-pretrained files
    end with ``fc_norm`` (normalising the average of the patch tokens) and no final norm:
    the host then defaults to ``out_type='avg_featmap'`` (fc_norm is its ``ln2``) and,
    for any file without a final norm, to ``final_norm=False``.

    Args:
        arch (str | dict): ``'eva02-t'``, ``'eva02-s'``, ``'eva02-b'``, ``'eva02-l'`` or
            a dict with ``embed_dims``, ``num_layers``, ``num_heads`` and
            ``feedforward_channels`` (the SwiGLU hidden width, 8/3 of the width).
        img_size (int): Defaults to 224. patch_size (int): Defaults to 14.
        rope_ref_grid (tuple[int, int], optional): The grid positions are rescaled to
            (the pretraining grid, timm's ``ref_feat_shape``). Defaults to the grid at
            ``img_size``.
        sub_ln (bool, optional): A LayerNorm inside attention (before ``proj``) and
            inside the MLP (before ``w3``). Defaults to None: as the file has it.
        **kwargs: :class:`TunedVisionTransformer` arguments (``tuners``,
            ``pretrained``, ``out_type``, ``drop_path_rate``...).

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedEVA02
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> host = TunedEVA02(arch=arch, img_size=28, out_type='raw',
        ...                   tuners=[dict(type='mmwst.LoRA', rank=2)])
        >>> host(torch.rand(1, 3, 28, 42))[0].shape  # 1 + 2 x 3 tokens
        torch.Size([1, 7, 32])
    """

    def __init__(
        self,
        arch: str | dict = 'eva02-t',
        img_size: int = 224,
        patch_size: int = 14,
        rope_ref_grid: tuple[int, int] | None = None,
        sub_ln: bool | None = None,
        pretrained: str | None = None,
        **kwargs,
    ) -> None:
        arch = _eva02_arch(arch)
        cached = None
        if isinstance(pretrained, str) and osp.isfile(pretrained):
            cached = self._convert_file(pretrained)
            if sub_ln is None:
                sub_ln = any(k.endswith('.ffn.norm.weight') for k in cached)
            if 'ln1.weight' not in cached:  # no final norm in the file
                kwargs.setdefault('final_norm', False)
            if 'ln2.weight' in cached:  # fc_norm: the average of the patches, normalised
                kwargs.setdefault('out_type', 'avg_featmap')
        sub_ln = bool(sub_ln)
        (height, width), (ph, pw) = to_2tuple(img_size), to_2tuple(patch_size)
        grid = (height // ph, width // pw)
        rope = GridRoPE(arch['embed_dims'] // arch['num_heads'], rope_ref_grid or grid)
        rates = torch.linspace(0, kwargs.get('drop_path_rate', 0.0), arch['num_layers'])
        eps = kwargs.get('norm_cfg', {}).get('eps', 1e-6)

        def block(index: int) -> EVA02Block:
            return EVA02Block(
                arch['embed_dims'],
                arch['num_heads'],
                arch['feedforward_channels'],
                rope,
                sub_ln,
                drop_path=float(rates[index]),
                norm_eps=eps,
            )

        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            pretrained=pretrained,
            block_factory=block,
            converted=cached,
            **kwargs,
        )
        self.sub_ln = sub_ln
        self.rope = rope

    @staticmethod
    def _convert_file(path: str) -> dict[str, Tensor]:
        return convert_eva02(read_checkpoint(path))

    def _embed_tokens(self, x: Tensor):
        ph, pw = self.patch_size
        self.rope.set_grid((x.shape[-2] // ph, x.shape[-1] // pw))
        return super()._embed_tokens(x)


def _eva02_arch(arch: str | dict) -> dict:
    if isinstance(arch, str):
        if arch.lower() not in EVA02_ARCHS:
            raise ValueError(f'unknown EVA-02 arch {arch!r}; choose from {sorted(EVA02_ARCHS)}')
        width, layers, heads = EVA02_ARCHS[arch.lower()]
        return dict(
            embed_dims=width,
            num_layers=layers,
            num_heads=heads,
            feedforward_channels=int(width * 4 * 2 / 3),
        )
    missing = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'} - set(arch)
    if missing:
        raise ValueError(f'an EVA-02 arch dict needs {sorted(missing)}')
    return dict(arch)


# ------------------------------------------------------------------------------------
# timm's eva02_* layout -> the host's names
# ------------------------------------------------------------------------------------
# timm's ViT names outside the blocks, and fc_norm (the norm after average pooling)
_TOP = {**_TIMM_TOP, 'fc_norm.weight': 'ln2.weight', 'fc_norm.bias': 'ln2.bias'}
_BLOCK = {
    'norm1.weight': 'norm1.weight',
    'norm1.bias': 'norm1.bias',
    'norm2.weight': 'norm2.weight',
    'norm2.bias': 'norm2.bias',
    'attn.proj.weight': 'attn.proj.weight',
    'attn.proj.bias': 'attn.proj.bias',
    'attn.norm.weight': 'attn.norm.weight',
    'attn.norm.bias': 'attn.norm.bias',
    'mlp.fc1.weight': 'ffn.w12.weight',  # packed SwiGLU: gate then value
    'mlp.fc1.bias': 'ffn.w12.bias',
    'mlp.norm.weight': 'ffn.norm.weight',
    'mlp.norm.bias': 'ffn.norm.bias',
    'mlp.fc2.weight': 'ffn.w3.weight',
    'mlp.fc2.bias': 'ffn.w3.bias',
}
_IGNORED = ('head.', 'rope.', 'mask_token')
#: the host's own top-level entries, in an mmwst checkpoint of the backbone
_OWN_TOP = {'cls_token', 'pos_embed', 'patch_embed', 'layers', 'pre_norm', 'ln1', 'ln2'}


def convert_eva02(obj: Mapping[str, Any]) -> dict[str, Tensor]:
    """timm ``Eva`` (EVA-02) weights to :class:`TunedEVA02` names (a file already in
    those names, e.g. the backbone of an mmwst checkpoint, is taken as it is).

    q/k/v become one ``qkv`` Linear whose bias is ``[q_bias; 0; v_bias]`` (EVA-02 has no
    key bias); a separate SwiGLU (``fc1_g``, ``fc1_x``) is packed into ``w12`` as
    ``[gate; value]``. Heads, rotary caches and the mask token are dropped; any other
    key stops the conversion.
    """
    flat, _, _ = _unwrap(obj)  # 'state_dict' / 'model' / 'module' wrappers
    if any(k.startswith(('layers.', 'backbone.layers.')) for k in flat):
        # the host's own names (an mmwst checkpoint): the backbone's entries as they are
        own = {k.removeprefix('backbone.'): v for k, v in flat.items()}
        return {k: torch.as_tensor(v) for k, v in own.items() if k.split('.')[0] in _OWN_TOP}
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    blocks: dict[int, dict[str, Tensor]] = {}
    for key, value in flat.items():
        if key.startswith('blocks.'):
            _, index, rest = key.split('.', 2)
            blocks.setdefault(int(index), {})[rest] = torch.as_tensor(value)
        elif key in _TOP:
            out[_TOP[key]] = torch.as_tensor(value)
        elif not key.startswith(_IGNORED):
            unknown.append(key)
    for index, parts in sorted(blocks.items()):
        prefix = f'layers.{index}.'
        attn_weight, attn_bias = _fused_qkv(parts, index, unknown)
        out[prefix + 'attn.qkv.weight'] = attn_weight
        if attn_bias is not None:
            out[prefix + 'attn.qkv.bias'] = attn_bias
        if 'mlp.fc1_g.weight' in parts:  # SwiGLU with separate gate and value
            for name in ('weight', 'bias'):
                gate, value = parts.pop(f'mlp.fc1_g.{name}', None), parts.pop(f'mlp.fc1_x.{name}')
                if gate is not None:
                    out[f'{prefix}ffn.w12.{name}'] = torch.cat([gate, value])
        for rest, value in parts.items():
            if rest in _BLOCK:
                out[prefix + _BLOCK[rest]] = value
            elif not rest.startswith('attn.k_bias'):
                unknown.append(f'blocks.{index}.{rest}')
    if unknown:
        raise ValueError(
            'these keys have no counterpart in mmwst.TunedEVA02 (an EVA option it does not '
            f'implement, e.g. layer scale or qk-norm): {", ".join(unknown[:8])}'
            + (f', ... ({len(unknown) - 8} more)' if len(unknown) > 8 else '')
        )
    return out


def _fused_qkv(
    parts: dict[str, Tensor], index: int, unknown: list[str]
) -> tuple[Tensor, Tensor | None]:
    """One ``[q; k; v]`` weight and bias from either of timm's attention layouts."""
    if 'attn.qkv.weight' in parts:
        weight = parts.pop('attn.qkv.weight')
        q_bias, v_bias = parts.pop('attn.q_bias', None), parts.pop('attn.v_bias', None)
    elif 'attn.q_proj.weight' in parts:
        weight = torch.cat([parts.pop(f'attn.{n}_proj.weight') for n in 'qkv'])
        q_bias, v_bias = parts.pop('attn.q_proj.bias', None), parts.pop('attn.v_proj.bias', None)
        if parts.pop('attn.k_proj.bias', None) is not None:
            unknown.append(f'blocks.{index}.attn.k_proj.bias')
    else:
        raise ValueError(f'block {index} of the EVA-02 file has no q/k/v weights')
    if q_bias is None:
        return weight, None
    return weight, torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])


__all__ = ['EVA02_ARCHS', 'GridRoPE', 'RoPEAttention', 'TunedEVA02', 'convert_eva02']
