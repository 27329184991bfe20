"""HST: hierarchical side-tuning (Lin et al., arXiv 2310.05393), classification variant."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.side_network import HierarchicalSideNetwork, tokens_to_map
from .base import BaseTuner, TokenContext
from .wst import WST_STATES

NUM_STAGES = 4
OUTPUTS = ('cls', 'pyramid')


@dataclass
class _SideState:
    """The side network's progress during one forward pass."""

    tokens: Tensor | None = None  # current stage's side tokens (B, H_s*W_s, C_s)
    hw: tuple[int, int] | None = None  # current stage's grid (H_s, W_s)
    fmap: Tensor | None = None  # last finished stage (B, C_s, H_s, W_s)
    maps: list[Tensor] = field(default_factory=list)  # finished stages ('pyramid')


@MODELS.register_module()
class HST(BaseTuner):
    """Hierarchical side-tuning: a small 4-stage side network reads the frozen ViT.

    Lin et al., "Hierarchical Side-Tuning for Vision Transformers", arXiv 2310.05393
    (Sec. 3: Meta-Register, Transformation Bridge, side blocks). With ``L`` ViT
    layers, ``k = L / 4`` consecutive layers feed each stage ``s`` (ViT-B: 3); side
    block ``j`` of stage ``s`` reads layer ``l = k (s - 1) + j``:

    1. Meta-Register: block ``l`` runs on ``[M_l; prefix; patches]`` with one learned
       meta token ``M_l`` (1, 1, D) in front (after the position embedding); from its
       output ``m_l = out[:, 0]`` and ``F_l`` = the patch tokens as ``(B, D, h, w)``;
       the meta token is dropped again, so the next block sees ``[prefix; patches]``.
    2. Transformation Bridge: one ``T_s = Linear(D -> C_s)`` per stage, shared by its
       ``k`` layers; ``g_l = LN_l(T_s(m_l))`` (one LayerNorm per layer) and
       ``f_l = T_s(bilinear(F_l, (H_s, W_s)))`` as tokens. ``f_l`` is computed as
       ``bilinear(T_s(F_l))``: the same values (bilinear weights sum to one), at
       ``C_s / D`` of the cost.
    3. Side block: ``t_l = mean_tokens(f_l)``, ``kv = [g_l; t_l]`` (B, 2, C_s);
       ``x = x + DropPath(CrossAttn(LN1(x), kv))``; ``x = x + f_l``;
       ``x = x + DropPath(MLP(LN2(x)))``.
    4. Stages: a stride-4 conv stem on the image, then Conv3x3/s2 patch embeddings;
       each stage ends with a LayerNorm, giving maps at strides 4 / 8 / 16 / 32
       (:class:`~mmwst.models.layers.side_network.HierarchicalSideNetwork`).

    The side network advances after every ViT block, so no per-layer activation is
    kept beyond the current stage. The tuner replaces the backbone's output:
    ``'cls'`` gives ``(mean of the stage-4 tokens,)`` of shape (B, C_4), for
    :class:`~mmwst.models.heads.HSTClsHead` (BatchNorm1d without affine + Linear);
    ``'pyramid'`` gives the four maps ``(B, C_s, H_s, W_s)``. Input sizes need not be
    multiples of 32: each stage's grid is read from its own feature map.

    Trainable: meta tokens, bridges and their norms, the side network, and the
    LayerNorms (``norm1``, ``norm2``) of every ViT block (the final norm stays frozen).
    Init: meta tokens xavier-uniform; conv normal(0, sqrt(2 / (k * k * C_out))); Linear
    trunc-normal(0.02), bias 0; LayerNorm / BatchNorm 1 and 0. Not mergeable; not
    identity at init (the output is the side network's).

    Parameters (MLP ratio 4, ``C_0 = 3`` image channels), summed over stages ``s``:
    stem ``9 C_0 C_1 + 4 C_1^2 + 5 C_1``; patch embeddings ``9 C_{s-1} C_s + 3 C_s``
    (s > 1); side blocks ``k (12 C_s^2 + 13 C_s)``; stage norms ``2 C_s``; bridges
    ``(D + 1) C_s``; bridge norms ``2 k C_s``; meta tokens ``L D``; ViT LayerNorms
    ``4 L D``. ViT-B/16, C = [32, 48, 64, 72]: 5,120 + 83,496 + 462,312 + 432 +
    166,104 + 1,296 + 9,216 + 36,864 = **764,840** (paper: 0.78M).

    Combining with tuners that insert tokens (VPT): list HST last, so its meta token
    is prepended after the others have placed theirs; every tuner that reads
    ``ctx.num_prefix`` sees the meta token counted while it is in the sequence.

    Args:
        channels (Sequence[int]): Side-network width of each of the 4 stages.
            Defaults to ``(32, 48, 64, 72)``.
        num_heads (Sequence[int]): Cross-attention heads of each stage (dividing its
            width). Defaults to ``(2, 4, 8, 12)``.
        mlp_ratio (float): Side-block MLP hidden width / stage width. Defaults to 4.
        qkv_bias (bool): Bias on the side blocks' q, k, v. Defaults to True.
        drop_path_rate (float): Side-network stochastic depth, rising linearly from 0
            over all side blocks. Defaults to 0.
        output (str): ``'cls'`` or ``'pyramid'`` (see above). Defaults to 'cls'.
        fine_branch (bool): Also inject WST's fine branch (dense design, ours): side
            block ``l`` adds ``Linear_s(resize(S_{l+1}))``, one ``Linear(D/4 -> C_s)`` per
            stage, to its fine-grained injection. Needs ``mmwst.WST`` earlier in the
            tuner list. Defaults to False.
        init_cfg (dict, optional): Unused; initialisation is the method's own.

    Examples:
        >>> import torch
        >>> import mmwst.models.tuners.hst  # noqa: F401
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
        >>> hst = dict(type='mmwst.HST', channels=[8, 12, 16, 32], num_heads=[1, 2, 2, 4])
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=[hst])
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 48, 64, 72),
        num_heads: Sequence[int] = (2, 4, 8, 12),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        output: str = 'cls',
        fine_branch: bool = False,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg)
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
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}')
        self.channels = tuple(channels)
        self.num_heads = tuple(num_heads)
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.output = output
        self.fine_branch = fine_branch

    def build(self, host) -> None:
        if host.host_kind != 'vit':
            raise ValueError(
                f'HST reads the token sequence of a plain ViT; the host is a '
                f'{host.host_kind!r} backbone ({type(host).__name__}). Use '
                'mmwst.TunedVisionTransformer as the backbone.'
            )
        num_layers = len(host.blocks)
        if num_layers % NUM_STAGES:
            raise ValueError(
                f'HST maps the ViT layers onto {NUM_STAGES} stages in equal groups, so the '
                f'number of layers must be divisible by {NUM_STAGES}; the host has '
                f'{num_layers}. Use a ViT with 4, 8, 12, ... layers.'
            )
        dim = host.blocks[0].dim
        self.layers_per_stage = num_layers // NUM_STAGES
        self.meta_tokens = nn.ParameterList(
            nn.Parameter(torch.empty(1, 1, dim)) for _ in range(num_layers)
        )
        self.side = HierarchicalSideNetwork(
            self.channels,
            self.num_heads,
            [self.layers_per_stage] * NUM_STAGES,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            drop_path_rate=self.drop_path_rate,
        )
        self.bridges = nn.ModuleList(nn.Linear(dim, c) for c in self.channels)
        self.bridge_norms = nn.ModuleList(
            nn.LayerNorm(self.channels[self._stage_of(i)[0]]) for i in range(num_layers)
        )
        if self.fine_branch:  # WST's branch state (D/4 wide) joins the fine injection
            self.branch_bridges = nn.ModuleList(nn.Linear(dim // 4, c) for c in self.channels)
        self.reset_parameters()

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Strides of the ``'pyramid'`` maps relative to the input image."""
        return self.side.strides

    def host_parameters(self, host) -> Iterator[nn.Parameter]:
        for spec in host.blocks:
            yield from spec.norm1.parameters()
            yield from spec.norm2.parameters()

    def reset_parameters(self) -> None:
        for token in self.meta_tokens:
            nn.init.xavier_uniform_(token)
        self.side.reset_parameters()
        for bridge in self.bridges:
            nn.init.trunc_normal_(bridge.weight, std=0.02)
            nn.init.zeros_(bridge.bias)
        for norm in self.bridge_norms:
            norm.reset_parameters()
        for bridge in getattr(self, 'branch_bridges', ()):
            nn.init.trunc_normal_(bridge.weight, std=0.02)
            nn.init.zeros_(bridge.bias)

    def _stage_of(self, index: int) -> tuple[int, int]:
        """(stage, side block) that ViT layer ``index`` feeds."""
        return divmod(index, self.layers_per_stage)

    # ---- token hooks -------------------------------------------------------------------
    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        ctx.state[self] = _SideState()
        return x

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        meta = self.meta_tokens[index].to(x.dtype).expand(x.shape[0], -1, -1)  # (B, 1, D)
        ctx.num_prefix += 1
        return torch.cat([meta, x], dim=1)  # (B, 1 + N, D)

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        meta = x[:, 0]  # m_l: (B, D)
        patches = x[:, ctx.num_prefix :]  # F_l as tokens: (B, h*w, D)
        grid = ctx.patch_resolution
        assert patches.shape[1] == grid[0] * grid[1], (patches.shape, grid)
        ctx.num_prefix -= 1
        self._advance(index, meta, patches, grid, ctx)
        return x[:, 1:]  # [prefix; patches]: (B, N, D)

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        state: _SideState = ctx.state.pop(self)
        if ctx.output is not None:
            raise ValueError(
                'another tuner already replaced the backbone output; HST produces the '
                'output itself, so use it with tuners that leave the output alone'
            )
        if self.output == 'pyramid':
            ctx.output = tuple(state.maps)
        else:
            ctx.output = (state.fmap.mean(dim=(2, 3)),)  # mean over stage-4 tokens: (B, C_4)
        return x

    # ---- the side network ----------------------------------------------------------------
    def _advance(
        self, index: int, meta: Tensor, patches: Tensor, grid: tuple[int, int], ctx
    ) -> None:
        """Run side block ``index`` (embedding or closing its stage when due)."""
        stage, block = self._stage_of(index)
        state: _SideState = ctx.state[self]
        if block == 0:
            source = ctx.image if stage == 0 else state.fmap
            state.tokens, state.hw = self.side.embed(stage, source)
        bridge = self.bridges[stage]
        g = self.bridge_norms[index](bridge(meta)).unsqueeze(1)  # g_l: (B, 1, C_s)
        fine = self._fine(bridge, patches, grid, state.hw)  # f_l: (B, H_s*W_s, C_s)
        kv = torch.cat([g, fine.mean(dim=1, keepdim=True)], dim=1)  # [g_l; t_l]: (B, 2, C_s)
        if self.fine_branch:
            fine = fine + self._branch(stage, index, state.hw, ctx)
        state.tokens = self.side.blocks[stage][block](state.tokens, kv, fine)
        if block == self.layers_per_stage - 1:
            state.fmap = self.side.finish(stage, state.tokens, state.hw)
            if self.output == 'pyramid':
                state.maps.append(state.fmap)

    def _branch(self, stage: int, index: int, size: tuple[int, int], ctx) -> Tensor:
        """WST's branch state after layer ``index``, projected and resized to the stage."""
        states = ctx.state.get(WST_STATES)
        if states is None or len(states) < index + 2:
            raise ValueError(
                'HST(fine_branch=True) reads the WST branch state: list mmwst.WST before '
                'mmwst.HST in the tuners (mmwst.DenseTunedViT does this)'
            )
        branch = states[index + 1]  # S_{l+1}: (B, D/4, 2h, 2w)
        branch = F.interpolate(branch, size=size, mode='bilinear', align_corners=False)
        tokens = branch.flatten(2).transpose(1, 2)  # (B, D/4, H_s, W_s) -> (B, H_s*W_s, D/4)
        return self.branch_bridges[stage](tokens)  # (B, H_s*W_s, C_s)

    @staticmethod
    def _fine(
        bridge: nn.Linear, patches: Tensor, grid: tuple[int, int], size: tuple[int, int]
    ) -> Tensor:
        """``T_s(bilinear(F_l, size))`` as tokens, computed as ``bilinear(T_s(F_l))``."""
        projected = bridge(patches)  # (B, h*w, C_s)
        if tuple(grid) == tuple(size):
            return projected
        fmap = tokens_to_map(projected, grid)  # (B, C_s, h, w)
        fmap = F.interpolate(fmap, size=size, mode='bilinear', align_corners=False)
        return fmap.flatten(2).transpose(1, 2)  # (B, C_s, H_s, W_s) -> (B, H_s*W_s, C_s)
