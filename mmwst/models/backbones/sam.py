"""The image encoder of SAM (Kirillov et al., 2023) as a frozen host: windowed attention
with decomposed relative positions, a few global-attention blocks, and the convolutional
neck, from mmpretrain's ``ViTSAM``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from mmpretrain.models.backbones import ViTSAM
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor, nn

from ...registry import MODELS
from ..tuners.base import BlockSpec, TokenContext
from .convert import _unwrap
from .host import TunableHostMixin
from .weights import read_checkpoint


@MODELS.register_module()
class TunedSAMViT(TunableHostMixin, ViTSAM):
    """mmpretrain ``ViTSAM`` (SAM's image encoder), frozen, with a list of tuners.

    The blocks keep their token maps ``(B, h, w, C)`` and attend inside windows (every
    block but the global ones); the tuners see the same tokens as a sequence
    ``(B, h * w, C)`` with no prefix, so every method that acts on layers (LoRA, DoRA,
    SSF, RLRR, adapters, PATT, BitFit, LN-tune), on the patch map (WST, FreqFit) or on
    the whole host works. Methods that insert tokens (VPT, prefix tuning, HST's meta
    tokens) are refused: a windowed attention has no place for a token off the grid.

    The output is the neck's map ``(B, out_channels, h, w)`` (256 for SAM), or the last
    block's ``(B, C, h, w)`` with ``out_channels=0``.

    Weights: SAM's released image encoder (``sam_vit_{b,l,h}_*.pth``; its
    ``image_encoder.`` prefix is removed and the prompt encoder and mask decoder are left
    out) and timm's ``samvit_*`` state dicts, checked strictly in both directions.

    Args:
        tuners (list[dict]): Tuner configs. Defaults to none.
        pretrained (str, optional): Local weights file. Defaults to None.
        save_frozen (bool): Keep the frozen weights in ``state_dict()``. Defaults to
            False.
        frozen_dtype (str, optional): ``'bf16'`` holds the frozen weights in bf16 (see
            :class:`TunedVisionTransformer`). Defaults to None.
        **kwargs: mmpretrain ``ViTSAM`` arguments (``arch``, ``img_size``,
            ``window_size``, ``out_channels``, ``out_type``...).

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedSAMViT
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64,
        ...             global_attn_indexes=[1])
        >>> host = TunedSAMViT(arch=arch, img_size=32, patch_size=8, window_size=2,
        ...                    out_channels=16, tuners=[dict(type='mmwst.LoRA', rank=2)])
        >>> host(torch.rand(1, 3, 32, 48))[0].shape
        torch.Size([1, 16, 4, 6])
    """

    host_kind = 'sam'
    num_extra_tokens = 0
    grid_tokens_only = "SAM's windowed attention needs every token on the patch grid"

    def _build_host(self, *args, pretrained: str | None = None, **kwargs) -> None:
        kwargs.setdefault('out_type', 'featmap')
        super()._build_host(*args, **kwargs)

    # ---- host description ------------------------------------------------------------
    def _make_block_specs(self) -> list[BlockSpec]:
        return [
            BlockSpec(
                index=i,
                stage=0,
                block=layer,
                dim=self.embed_dims,
                num_heads=layer.attn.num_heads,
                norm1=layer.ln1,
                attn=layer.attn,
                attn_branch=layer.attn,
                qkv=layer.attn.qkv,
                proj=layer.attn.proj,
                norm2=layer.ln2,
                ffn=layer.ffn,
                mlp=layer.ffn.layers,
                fc1=layer.ffn.layers[0][0],
                fc2=layer.ffn.layers[1],
            )
            for i, layer in enumerate(self.layers)
        ]

    def final_norms(self) -> list[nn.Module]:
        return []  # the blocks end without a norm; the neck has its own

    @property
    def out_strides(self) -> tuple[int, ...]:
        return tuple(self.patch_size[0] for _ in self.out_indices)

    def _read_pretrained(self, path: str) -> dict[str, Tensor]:
        return convert_sam(read_checkpoint(path))

    # ---- forward -----------------------------------------------------------------------
    def forward_host(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check_input(x)
        image = x
        x, grid = self.patch_embed(x)  # (B, h*w, C)
        if self.use_abs_pos:
            pos = resize_pos_embed(
                self.pos_embed.flatten(1, 2),
                self.patch_resolution,
                grid,
                mode=self.interpolate_mode,
                num_extra_tokens=0,
            )
            x = self.drop_after_pos(x + pos)
        ctx = TokenContext(image=image, patch_resolution=tuple(grid), num_prefix=0)
        return self._walk_blocks(x, ctx)

    def _block_step(self, spec: BlockSpec, x: Tensor, ctx: TokenContext) -> Tensor:
        """SAM's blocks read the tokens as a map ``(B, h, w, C)``."""
        h, w = ctx.patch_resolution
        return spec.block(x.unflatten(1, (h, w))).flatten(1, 2)

    def _between_blocks(self, spec: BlockSpec, x: Tensor, ctx: TokenContext, outs: list) -> Tensor:
        """An output for each index in ``out_indices``: the neck's map (or the block's
        with ``out_channels=0``)."""
        if spec.index in self.out_indices:
            fmap = x.transpose(1, 2).unflatten(2, ctx.patch_resolution)
            if self.out_channels > 0:
                fmap = self.channel_reduction(fmap)
            outs.append(self._format_output(fmap))
        return x


# ------------------------------------------------------------------------------------
# SAM's release and timm's samvit_* -> mmpretrain ViTSAM names
# ------------------------------------------------------------------------------------
_BLOCK = {
    'norm1.': 'ln1.',
    'norm2.': 'ln2.',
    'attn.': 'attn.',
    'mlp.lin1.': 'ffn.layers.0.0.',  # SAM's release
    'mlp.lin2.': 'ffn.layers.1.',
    'mlp.fc1.': 'ffn.layers.0.0.',  # timm
    'mlp.fc2.': 'ffn.layers.1.',
}
_TOP = {
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
}


def convert_sam(obj: Mapping[str, Any]) -> dict[str, Tensor]:
    """SAM's image encoder (the release or timm's ``samvit_*``) to ``ViTSAM`` names.

    Files already in those names (an mmpretrain ``ViTSAM`` or an mmwst checkpoint) are
    taken as they are. The prompt encoder, the mask decoder and heads are left out; any
    other key stops the conversion.
    """
    flat, _, _ = _unwrap(obj)  # 'state_dict' / 'model' / 'module' wrappers
    if any(k.startswith('image_encoder.') for k in flat):
        flat = {
            k[len('image_encoder.') :]: v for k, v in flat.items() if k.startswith('image_encoder.')
        }
    flat = {k.removeprefix('backbone.'): v for k, v in flat.items()}
    if any(k.startswith('layers.') for k in flat):
        own = ('pos_embed', 'patch_embed.', 'layers.', 'channel_reduction.')
        return {k: torch.as_tensor(v) for k, v in flat.items() if k.startswith(own)}
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in flat.items():
        value = torch.as_tensor(value)
        if key in _TOP:
            out[_TOP[key]] = value
        elif key.startswith('neck.'):
            out['channel_reduction.' + key[len('neck.') :]] = value
        elif key.startswith('blocks.'):
            _, index, rest = key.split('.', 2)
            match = next((src for src in _BLOCK if rest.startswith(src)), None)
            if match is None:
                unknown.append(key)
            else:
                out[f'layers.{index}.{_BLOCK[match]}{rest[len(match) :]}'] = value
        elif not key.startswith(('head.', 'prompt_encoder.', 'mask_decoder.')):
            unknown.append(key)
    if unknown:
        raise ValueError(
            'these keys have no counterpart in the SAM image encoder: '
            + ', '.join(unknown[:8])
            + (f', ... ({len(unknown) - 8} more)' if len(unknown) > 8 else '')
        )
    return out


__all__ = ['TunedSAMViT', 'convert_sam']
