"""A frozen mmpretrain Swin Transformer with composable tuners."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.logging import print_log
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.models.utils.attention import WindowMSA
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.tunable import make_tunable_attention
from ..tuners.base import BlockSpec, TokenContext
from .host import TunableHostMixin
from .weights import read_checkpoint


def _strip_prefixes(state: dict, prefixes: Sequence[str]) -> dict:
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


@MODELS.register_module()
class TunedSwinTransformer(TunableHostMixin, SwinTransformer):
    """mmpretrain ``SwinTransformer``, frozen, with a list of tuners.

    The same lifecycle and arguments as
    :class:`~mmwst.models.backbones.TunedVisionTransformer` (``tuners``, ``pretrained``,
    ``save_frozen``, ``frozen_dtype``); every other argument is mmpretrain's. Blocks are
    numbered across stages (Swin-B: 2 + 2 + 18 + 2 = 24 blocks) and each block's width
    and head count come from its stage. Token hooks see ``(B, H*W, C)`` tokens of the current stage;
    attention-level methods (PATT, prefix tuning, VPT) act inside every window.

    ``pretrained`` takes an mmpretrain Swin checkpoint (a local file; a ``state_dict``
    wrapper and a ``backbone.`` prefix are accepted).

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedSwinTransformer
        >>> arch = dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4])
        >>> model = TunedSwinTransformer(arch=arch, img_size=64, window_size=4,
        ...                              out_indices=(1, ), tuners=[dict(type='mmwst.LoRA')])
        >>> model(torch.rand(1, 3, 64, 64))[0].shape
        torch.Size([1, 32, 8, 8])
    """

    host_kind = 'swin'
    grid_tokens_only = (
        "Swin's shifted windows need every token on the patch grid (VPT and prefix tuning "
        'act inside the windows, not on the sequence)'
    )

    def _build_host(self, *args, pretrained: str | None = None, **kwargs) -> None:
        super()._build_host(*args, **kwargs)
        for block in self.stages.modules():
            if isinstance(block, WindowMSA):  # one fused attention call per window batch
                make_tunable_attention(block)

    def _make_block_specs(self) -> list[BlockSpec]:
        specs = []
        for s, stage in enumerate(self.stages):
            for block in stage.blocks:
                w_msa = block.attn.w_msa
                specs.append(
                    BlockSpec(
                        index=len(specs),
                        stage=s,
                        block=block,
                        dim=stage.embed_dims,
                        num_heads=w_msa.num_heads,
                        norm1=block.norm1,
                        attn=w_msa,
                        attn_branch=block.attn,
                        qkv=w_msa.qkv,
                        proj=w_msa.proj,
                        norm2=block.norm2,
                        ffn=block.ffn,
                        mlp=block.ffn.layers,
                        fc1=block.ffn.layers[0][0],
                        fc2=block.ffn.layers[1],
                    )
                )
        return specs

    def final_norms(self) -> list[nn.Module]:
        return [getattr(self, f'norm{i}') for i in self.out_indices]

    def merging_layers(self) -> list[nn.Linear]:
        return [stage.downsample.reduction for stage in self.stages if stage.downsample is not None]

    def _read_pretrained(self, path: str) -> dict[str, Tensor]:
        state = dict(read_checkpoint(path))
        if 'state_dict' in state and isinstance(state['state_dict'], dict):
            state = state['state_dict']
        state = {k: v for k, v in state.items() if not k.startswith(('head.', 'neck.'))}
        return self._add_output_norms(_strip_prefixes(state, ('module.', 'backbone.')), path)

    def _add_output_norms(self, state: dict[str, Tensor], path: str) -> dict[str, Tensor]:
        """A classification checkpoint holds the norm after the last stage only; the
        norms a dense backbone adds after the other stages it outputs (``out_indices``)
        are then LayerNorms with weight 1 and bias 0 and stay frozen - as the Mona
        release and mmdet's non-strict Swin loading leave them. Only for a file that
        holds the last stage's norm: any other missing key still fails the strict check."""
        last = f'norm{len(self.stages) - 1}'
        if f'{last}.weight' not in state:
            return state
        added = []
        for i in self.out_indices:
            norm = getattr(self, f'norm{i}')
            if f'norm{i}.weight' in state or f'norm{i}.bias' in state:
                continue
            state[f'norm{i}.weight'] = torch.ones_like(norm.weight)
            state[f'norm{i}.bias'] = torch.zeros_like(norm.bias)
            added.append(f'norm{i}')
        if added:
            print_log(
                f'{path} holds no {", ".join(added)} (a classification checkpoint): those '
                'output norms start at weight 1, bias 0 and stay frozen',
                logger='current',
            )
        return state

    def forward_host(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check_input(x)
        image = x
        x, hw_shape = self.patch_embed(x)  # (B, h*w, C)
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(
                self.absolute_pos_embed,
                self.patch_resolution,
                hw_shape,
                self.interpolate_mode,
                self.num_extra_tokens,
            )
        x = self.drop_after_pos(x)
        ctx = TokenContext(image=image, patch_resolution=tuple(hw_shape), num_prefix=0)
        return self._walk_blocks(x, ctx)

    def _block_step(self, spec: BlockSpec, x: Tensor, ctx: TokenContext) -> Tensor:
        return spec.block(x, ctx.patch_resolution)  # its stage's grid

    def _between_blocks(self, spec: BlockSpec, x: Tensor, ctx: TokenContext, outs: list) -> Tensor:
        """At the end of each stage: its output (after the stage's norm, as a map) where
        ``out_indices`` asks, and the patch merging into the next stage's grid."""
        s = spec.stage
        stage = self.stages[s]
        if spec.block is not stage.blocks[-1]:
            return x
        hw_shape = ctx.patch_resolution
        if stage.downsample is not None and self.out_after_downsample:
            x, hw_shape = stage.downsample(x, hw_shape)
        if s in self.out_indices:
            out = getattr(self, f'norm{s}')(x)
            # (B, H*W, C) -> (B, C, H, W)
            out = out.view(-1, *hw_shape, self.num_features[s]).permute(0, 3, 1, 2)
            outs.append(out.contiguous())
        if stage.downsample is not None and not self.out_after_downsample:
            x, hw_shape = stage.downsample(x, hw_shape)
        ctx.patch_resolution = tuple(hw_shape)
        return x
