"""HST's trainable side as stateless steps (Lin et al., arXiv 2310.05393).

:class:`HSTSide` owns HST's parameters - the meta tokens, the transformation bridges and
their norms, the :class:`~.side_network.HierarchicalSideNetwork` and, in mmwst's dense
design, the bridges from WST's fine branch - and the math of one side step. The state
of a forward pass (:class:`SideState`) belongs to the caller: the classification tuner
(:class:`~mmwst.models.tuners.HST`) keeps it for its host's token hooks, the dense
backbone (:class:`~mmwst.models.backbones.DenseTunedViT`) in its own loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .side_network import HierarchicalSideNetwork

NUM_STAGES = 4


@dataclass
class SideState:
    """The side network's progress during one forward pass."""

    tokens: Tensor | None = None  # current stage's side tokens (B, H_s*W_s, C_s)
    hw: tuple[int, int] | None = None  # current stage's grid (H_s, W_s)
    fmap: Tensor | None = None  # last finished stage (B, C_s, H_s, W_s)
    maps: list[Tensor] = field(default_factory=list)  # every finished stage


class HSTSide(nn.Module):
    """HST's side: a 4-stage side network driven by the layers of a frozen ViT.

    ``L`` ViT layers feed the four stages in equal groups of ``k = L / 4``; side block
    ``j`` of stage ``s`` reads layer ``l = k s + j`` (0-based). One :meth:`step` per
    layer, given the layer's key token ``m_l`` (its meta-token output, or another
    summary token of the layer) and its output patch map ``F_l``:

    - ``g_l = LN_l(T_s(m_l))`` and ``f_l = T_s(bilinear(F_l, (H_s, W_s)))`` as tokens,
      with one ``T_s = Linear(D -> C_s)`` per stage (``f_l`` is computed as
      ``bilinear(T_s(F_l))``: the same values at ``C_s / D`` of the cost);
    - with a fine branch: ``f_l += B_s(bilinear(S_{l+1}, (H_s, W_s)))``,
      ``B_s = Linear(D/4 -> C_s)`` (mmwst's dense design: WST's branch state after the
      layer);
    - side block: ``kv = [g_l; mean_tokens(f_l)]``; ``x = x + DropPath(CrossAttn(LN1(x),
      kv))``; ``x = x + f_l``; ``x = x + DropPath(MLP(LN2(x)))``;
    - the first block of a stage embeds the image (stride-4 stem) or the previous stage's
      map (Conv3x3/s2); the last one closes the stage into a map (LayerNorm).

    Args:
        embed_dims (int): ViT width ``D``.
        num_layers (int): ViT layers ``L`` (a multiple of 4).
        channels (Sequence[int]): Width of each of the 4 stages.
        num_heads (Sequence[int]): Cross-attention heads of each stage.
        mlp_ratio (float): Side-block MLP width / stage width. Defaults to 4.
        qkv_bias (bool): Bias on the side blocks' q, k, v. Defaults to True.
        drop_path_rate (float): Stochastic depth over the side blocks. Defaults to 0.
        meta_tokens (bool): Hold one learned meta token ``M_l`` (1, 1, D) per layer for
            the caller to insert into the ViT. Defaults to True.
        branch_dims (int, optional): Width of a fine branch to read (WST: ``D/4``), or
            None. Defaults to None.
        in_channels (int): Image channels. Defaults to 3.
    """

    def __init__(
        self,
        embed_dims: int,
        num_layers: int,
        channels: Sequence[int],
        num_heads: Sequence[int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        meta_tokens: bool = True,
        branch_dims: int | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        channels, num_heads = list(channels), list(num_heads)
        check_stage_widths(channels, num_heads)
        if num_layers % NUM_STAGES:
            raise ValueError(
                f'HST maps the ViT layers onto {NUM_STAGES} stages in equal groups, so the '
                f'number of layers must be divisible by {NUM_STAGES}; the host has '
                f'{num_layers}. Use a ViT with 4, 8, 12, ... layers.'
            )
        self.channels = tuple(channels)
        self.layers_per_stage = num_layers // NUM_STAGES
        self.meta_tokens = (
            nn.ParameterList(nn.Parameter(torch.empty(1, 1, embed_dims)) for _ in range(num_layers))
            if meta_tokens
            else None
        )
        self.net = HierarchicalSideNetwork(
            channels,
            num_heads,
            [self.layers_per_stage] * NUM_STAGES,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            in_channels=in_channels,
        )
        self.bridges = nn.ModuleList(nn.Linear(embed_dims, c) for c in channels)
        self.bridge_norms = nn.ModuleList(
            nn.LayerNorm(channels[self.stage_of(i)[0]]) for i in range(num_layers)
        )
        self.branch_bridges = (
            nn.ModuleList(nn.Linear(branch_dims, c) for c in channels)
            if branch_dims is not None
            else None
        )
        self.reset_parameters()

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the four stage maps relative to the input image."""
        return self.net.strides

    def stage_of(self, index: int) -> tuple[int, int]:
        """(stage, side block) that ViT layer ``index`` feeds."""
        return divmod(index, self.layers_per_stage)

    def reset_parameters(self) -> None:
        """Meta tokens xavier-uniform; the side network HST's way; Linear
        trunc_normal(0.02) with bias 0; LayerNorms 1 and 0."""
        for token in self.meta_tokens or ():
            nn.init.xavier_uniform_(token)
        self.net.reset_parameters()
        for bridge in self.bridges:
            nn.init.trunc_normal_(bridge.weight, std=0.02)
            nn.init.zeros_(bridge.bias)
        for norm in self.bridge_norms:
            norm.reset_parameters()
        for bridge in self.branch_bridges or ():
            nn.init.trunc_normal_(bridge.weight, std=0.02)
            nn.init.zeros_(bridge.bias)

    def meta(self, index: int, like: Tensor) -> Tensor:
        """``M_index`` for a batch of tokens ``like`` (B, N, D): ``(B, 1, D)``."""
        return self.meta_tokens[index].to(like.dtype).expand(like.shape[0], -1, -1)

    def step(
        self,
        state: SideState,
        index: int,
        image: Tensor,
        key: Tensor,
        patches: Tensor,
        branch: Tensor | None = None,
    ) -> None:
        """Run side block ``index`` (embedding or closing its stage when due).

        Args:
            state (SideState): This forward pass's state, updated in place.
            index (int): The ViT layer ``l``.
            image (Tensor): The input image ``(B, C, H, W)`` (read by the stem).
            key (Tensor): ``m_l``, the layer's key token ``(B, D)``.
            patches (Tensor): ``F_l``, the layer's output patch map ``(B, h, w, D)``.
            branch (Tensor, optional): ``S_{l+1}`` ``(B, D/4, 2h, 2w)`` when the side
                reads a fine branch.
        """
        stage, block = self.stage_of(index)
        if block == 0:
            source = image if stage == 0 else state.fmap
            state.tokens, state.hw = self.net.embed(stage, source)
        bridge = self.bridges[stage]
        g = self.bridge_norms[index](bridge(key)).unsqueeze(1)  # g_l: (B, 1, C_s)
        fine = _resized_tokens(bridge(patches), state.hw)  # f_l: (B, H_s*W_s, C_s)
        kv = torch.cat([g, fine.mean(dim=1, keepdim=True)], dim=1)  # [g_l; t_l]: (B, 2, C_s)
        if self.branch_bridges is not None:
            if branch is None:
                raise ValueError('this side network reads a fine branch: pass branch=S_{l+1}')
            fine = fine + self._branch(stage, branch, state.hw)
        state.tokens = self.net.blocks[stage][block](state.tokens, kv, fine)
        if block == self.layers_per_stage - 1:
            state.fmap = self.net.finish(stage, state.tokens, state.hw)
            state.maps.append(state.fmap)

    def _branch(self, stage: int, branch: Tensor, size: tuple[int, int]) -> Tensor:
        """``B_s(bilinear(S_{l+1}, size))`` as tokens ``(B, H_s*W_s, C_s)``."""
        branch = F.interpolate(branch, size=size, mode='bilinear', align_corners=False)
        tokens = branch.flatten(2).transpose(1, 2)  # (B, D/4, H_s, W_s) -> (B, H_s*W_s, D/4)
        return self.branch_bridges[stage](tokens)


def _resized_tokens(fmap: Tensor, size: tuple[int, int]) -> Tensor:
    """A channels-last map ``(B, h, w, C)`` bilinearly resized to ``size``, as tokens
    ``(B, H_s*W_s, C)`` (no resampling when the grid already has that size)."""
    batch, height, width, channels = fmap.shape
    if (height, width) == tuple(size):
        return fmap.reshape(batch, height * width, channels)
    resized = F.interpolate(
        fmap.permute(0, 3, 1, 2), size=size, mode='bilinear', align_corners=False
    )  # (B, C, h, w) -> (B, C, H_s, W_s)
    return resized.flatten(2).transpose(1, 2)  # -> (B, H_s*W_s, C)


def check_stage_widths(channels: Sequence[int], num_heads: Sequence[int]) -> None:
    """Four integer stage widths, each a positive multiple of its heads."""
    channels, num_heads = list(channels), list(num_heads)
    if len(channels) != NUM_STAGES or len(num_heads) != NUM_STAGES:
        raise ValueError(
            f'HST has {NUM_STAGES} stages: channels and num_heads need {NUM_STAGES} '
            f'entries each, got channels={channels} and num_heads={num_heads}'
        )
    for width, heads in zip(channels, num_heads):
        if not isinstance(width, int) or not isinstance(heads, int):
            raise TypeError(
                f'channels and num_heads must be integers, got {channels} and {num_heads}'
            )
        if width < 1 or heads < 1 or width % heads:
            raise ValueError(
                f'each stage width must be a positive multiple of its heads, got '
                f'channels={channels} and num_heads={num_heads}'
            )
