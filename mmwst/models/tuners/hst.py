"""HST: hierarchical side-tuning (Lin et al., arXiv 2310.05393), as token hooks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.hst_side import (
    HSTSide,
    SideState,
    check_stage_widths,
    hst_side_count,
)
from .base import BaseTuner, HostSpec, TokenContext
from .wst import WST

OUTPUTS = ('cls', 'pyramid')
KEYS = ('meta', 'cls')


@MODELS.register_module()
class HST(BaseTuner):
    """Hierarchical side-tuning: a small 4-stage side network reads the frozen ViT.

    Lin et al., "Hierarchical Side-Tuning for Vision Transformers", arXiv 2310.05393
    (Sec. 3: Meta-Register, Transformation Bridge, side blocks). With ``L`` ViT
    layers, ``k_s`` consecutive layers feed stage ``s``, one side block each: by default
    ``k_s = L / 4`` (ViT-B: 3); ``block_indices`` (the released code's option) gives the
    last layer of each stage instead, e.g. ``(1, 5, 9, 11)`` for ``k = (2, 4, 4, 2)``:

    1. Meta-Register: block ``l`` runs on ``[M_l; prefix; patches]`` with ``M`` learned
       meta tokens ``M_l`` (1, M, D) in front (after the position embedding; ``M = 1``
       by default, the released code's ``metaG_num``); from its output
       ``m_l = out[:, :M]`` and ``F_l`` = the patch tokens as ``(B, D, h, w)``; the meta
       tokens are dropped again, so the next block sees ``[prefix; patches]``.
    2. Transformation Bridge: one ``T_s = Linear(D -> C_s)`` per stage, shared by its
       ``k`` layers; ``g_l = LN_l(T_s(m_l))`` (one LayerNorm per layer) and
       ``f_l = T_s(bilinear(F_l, (H_s, W_s)))`` as tokens. ``f_l`` is computed as
       ``bilinear(T_s(F_l))``: the same values (bilinear weights sum to one), at
       ``C_s / D`` of the cost.
    3. Side block: ``t_l = mean_tokens(f_l)``, ``kv = [g_l; t_l]`` (B, M + 1, C_s);
       ``x = x + DropPath(CrossAttn(LN1(x), kv))``; ``x = x + f_l``;
       ``x = x + DropPath(MLP(LN2(x)))``.
    4. Stages: a stride-4 conv stem on the image, then Conv3x3/s2 patch embeddings;
       each stage ends with a LayerNorm, giving maps at strides 4 / 8 / 16 / 32
       (:class:`~mmwst.models.layers.side_network.HierarchicalSideNetwork`).

    The math lives in :class:`~mmwst.models.layers.HSTSide` (``self.side``); this tuner
    is its one driver, from the host's token hooks, in classification and in the dense
    backbone (:class:`~mmwst.models.backbones.DenseTunedViT` adds it as a part, with
    ``output='pyramid'`` and, beside the ViT, ``key='cls'``; with WST on, the side
    network also reads WST's branch state after each layer, ``branch``). The side
    network runs each stage once the ViT has run its layers, with
    the work that only reads the ViT (bridges, resizes, the key side of the
    cross-attentions) batched over those layers; nothing per layer is kept beyond the
    current stage. The tuner replaces the backbone's output:
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
    (s > 1); side blocks ``k_s (12 C_s^2 + 13 C_s)``; stage norms ``2 C_s``; bridges
    ``(D + 1) C_s``; bridge norms ``2 k_s C_s``; meta tokens ``M L D``; ViT LayerNorms
    ``4 L D``. ViT-B/16, C = [32, 48, 64, 72]: 5,120 + 83,496 + 462,312 + 432 +
    166,104 + 1,296 + 9,216 + 36,864 = **764,840** (paper: 0.78M); with ``M = 2``
    774,056; with ``block_indices=(1, 5, 9, 11)`` (k = 2, 4, 4, 2) 767,264.

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
        num_meta_tokens (int): Meta tokens per layer, ``M``. Defaults to 1.
        block_indices (Sequence[int], optional): The last ViT layer (0-based) of each
            stage, increasing and ending at ``L - 1``. Defaults to None (equal groups).
        key (str): What each side block reads as the layer's key ``m_l``: ``'meta'``,
            the meta tokens' output (the Meta-Register, above); or ``'cls'``, the class
            token's output - nothing is inserted into the ViT and its LayerNorms stay
            frozen, so the tuner needs no gradient through the ViT (the dense backbone
            beside the ViT). Defaults to 'meta'.
        branch (WST, optional): A :class:`~mmwst.models.tuners.WST` tuner listed before
            this one on the same host, whose branch state ``S_{l+1}`` each side block
            also reads (``f_l += B_s(bilinear(S_{l+1}))``, mmwst's dense design). Given
            in Python (the dense backbone passes its own); not part of the state.
            Defaults to None.
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

    supported_hosts = ('vit',)
    host_reason = (
        'It reads the token sequence of a plain ViT; use mmwst.TunedVisionTransformer as '
        'the backbone.'
    )

    def __init__(
        self,
        channels: Sequence[int] = (32, 48, 64, 72),
        num_heads: Sequence[int] = (2, 4, 8, 12),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        output: str = 'cls',
        num_meta_tokens: int = 1,
        block_indices: Sequence[int] | None = None,
        key: str = 'meta',
        branch: WST | None = None,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg)
        check_stage_widths(channels, num_heads)
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}')
        if key not in KEYS:
            raise ValueError(f'key must be one of {KEYS}, got {key!r}')
        if branch is not None and not isinstance(branch, WST):
            raise TypeError(
                f'branch must be the WST tuner whose state the side network reads, got '
                f'{type(branch).__name__}'
            )
        self.channels = tuple(channels)
        self.num_heads = tuple(num_heads)
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.output = output
        self.num_meta_tokens = num_meta_tokens
        self.block_indices = None if block_indices is None else tuple(block_indices)
        self.key = key
        # a reference, not a sub-module: the WST tuner is registered where it is listed
        self._branch = (branch,) if branch is not None else ()

    def build(self, host: HostSpec) -> None:
        if self.key == 'cls' and host.num_extra_tokens < 1:
            raise ValueError(
                "HST with key='cls' reads each layer's class-token output, but this host "
                'has no class token (with_cls_token=False): build it with one, or use '
                "key='meta'"
            )
        self.side = HSTSide(
            host.blocks[0].dim,
            len(host.blocks),
            self.channels,
            self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            drop_path_rate=self.drop_path_rate,
            in_channels=host.in_channels,
            num_meta=self.num_meta_tokens,
            block_indices=self.block_indices,
            meta_tokens=self.key == 'meta',
            branch_dims=host.embed_dims // 4 if self._branch else None,
        )

    def param_count(self, host: HostSpec) -> int:
        """The side network's count
        (:func:`~mmwst.models.layers.hst_side.hst_side_count`: stem, patch embeddings,
        side blocks, stage norms, bridges and their norms, meta tokens) plus the ViT's
        LayerNorms, ``4 L D`` (ViT-B/16: 764,840)."""
        layers, dim = len(host.blocks), host.embed_dims
        side = hst_side_count(
            dim,
            layers,
            self.channels,
            in_channels=host.in_channels,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            num_meta=self.num_meta_tokens if self.key == 'meta' else 0,
            block_indices=self.block_indices,
            branch_dims=dim // 4 if self._branch else None,
        )
        return side + (4 * layers * dim if self.key == 'meta' else 0)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Strides of the ``'pyramid'`` maps relative to the input image."""
        return self.side.strides

    def host_parameters(self, host: HostSpec) -> Iterator[nn.Parameter]:
        if self.key != 'meta':  # nothing back-propagates through the ViT to its norms
            return
        for spec in host.blocks:
            yield from spec.norm1.parameters()
            yield from spec.norm2.parameters()

    def reset_parameters(self) -> None:
        self.side.reset_parameters()

    # ---- token hooks -------------------------------------------------------------------
    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        # reading WST's sub-bands T_{l+1}, the side network makes S_{l+1} itself, per stage
        spatial = self._branch[0].branch.spatial if self._branch else None
        ctx.state[self] = self.side.cast_meta(SideState(branch_transform=spatial), x.dtype)
        return x

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.key != 'meta':
            return x
        ctx.num_prefix += self.num_meta_tokens
        meta = self.side.meta(index, x, ctx.state[self])
        return torch.cat([meta, x], dim=1)  # (B, M + N, D)

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        # m_l: the first M tokens (or the class token); F_l: the last h*w (B, h, w, D),
        # after the tuners listed before this one (WST's feedback); read as one tensor
        grid = ctx.patch_resolution
        keys = self.num_meta_tokens if self.key == 'meta' else 1
        branch = ctx.state[self._branch[0]] if self._branch else None  # T_{l+1} = W_l
        ctx.state[self] = self.side.step_tokens(
            ctx.state[self], index, ctx.image, x, keys, grid, branch
        )
        if self.key != 'meta':
            return x
        ctx.num_prefix -= self.num_meta_tokens
        return x[:, self.num_meta_tokens :]  # [prefix; patches]: (B, N, D)

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        state: SideState = ctx.state.pop(self)
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
