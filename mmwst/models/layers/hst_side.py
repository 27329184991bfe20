"""HST's trainable side as stateless steps (Lin et al., arXiv 2310.05393).

:class:`HSTSide` owns HST's parameters - the meta tokens, the transformation bridges and
their norms, the :class:`~.side_network.HierarchicalSideNetwork` and, in mmwst's dense
design, the bridges from WST's fine branch - and the math of one side step. The state
of a forward pass (:class:`SideState`, a value) belongs to the caller, who hands it to
each step and keeps the state the step returns, as with WST's branch
(:meth:`~mmwst.models.layers.WSTBranch.step`): its one driver is the tuner
(:class:`~mmwst.models.tuners.HST`), from its host's token hooks, in classification and
as a part of the dense backbone (:class:`~mmwst.models.backbones.DenseTunedViT`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .casting import CastLinear, autocast_dtype, cast_in_one_copy
from .resize import resize_map, resize_tokens
from .side_keys import key_terms, paired_keys, stage_weights
from .side_network import HierarchicalSideNetwork

NUM_STAGES = 4


@dataclass
class _Layer:
    """What the side network reads of one ViT layer: its output ``tokens`` (B, T, D),
    of which the first ``num_keys`` are the keys ``m_l`` and the last ``h*w`` the patch
    map ``F_l``; or the keys (B, M, D) and patches (B, h*w, D) apart (``tokens`` None)."""

    tokens: Tensor | None
    num_keys: int
    keys: Tensor | None
    patches: Tensor | None
    branch: Tensor | None


@dataclass(frozen=True)
class SideState:
    """The side network's progress during one forward pass, as a value: each step
    (:meth:`HSTSide.step`, :meth:`HSTSide.step_tokens`, :meth:`HSTSide.run_stage`)
    returns the next state and leaves the one it was given as it was.

    ``maps``: the finished stages' maps ``(B, C_s, H_s, W_s)``; ``pending``: the current
    stage's layers so far; ``grid``: the ViT's patch grid ``(h, w)``;
    ``branch_transform``: set by a caller that passes WST's sub-bands ``T_{l+1}``
    ``(B, h, w, D)`` as each layer's branch instead of the branch state ``S_{l+1}``; the
    side network then maps them to ``S_{l+1}`` itself, once per stage for all its
    layers (e.g. ``WSTBranch.spatial``); ``meta``: every layer's meta tokens (each
    ``(1, M, D)``) in the ViT tokens' type, cast in one copy where it differs from theirs
    (:meth:`HSTSide.cast_meta`)."""

    maps: tuple[Tensor, ...] = ()
    pending: tuple[_Layer, ...] = ()
    grid: tuple[int, int] | None = None
    branch_transform: Callable[[Tensor], Tensor] | None = None
    meta: tuple[Tensor, ...] | None = None

    @property
    def fmap(self) -> Tensor | None:
        """The last finished stage's map (None before the first)."""
        return self.maps[-1] if self.maps else None


class HSTSide(nn.Module):
    """HST's side: a 4-stage side network driven by the layers of a frozen ViT.

    ``L`` ViT layers feed the four stages in consecutive groups: by default equal groups
    of ``k = L / 4``; with ``block_indices = (b_0, b_1, b_2, b_3)`` (the last layer of
    each stage, ``b_3 = L - 1``) stage ``s`` reads layers ``b_{s-1} + 1 ... b_s``, one
    side block each. One :meth:`step` per layer, given the layer's key tokens ``m_l``
    (its ``M`` meta tokens' output, or another summary token of the layer) and its
    output patch map ``F_l``:

    - ``g_l = LN_l(T_s(m_l))`` (``M`` tokens) and ``f_l = T_s(bilinear(F_l, (H_s,
      W_s)))`` as tokens, with one ``T_s = Linear(D -> C_s)`` per stage (``f_l`` is
      computed as ``bilinear(T_s(F_l))``: the same values at ``C_s / D`` of the cost);
    - with a fine branch: ``f_l += B_s(bilinear(S_{l+1}, (H_s, W_s)))``,
      ``B_s = Linear(D/4 -> C_s)`` (mmwst's dense design: WST's branch state after the
      layer);
    - side block: ``kv = [g_l; mean_tokens(f_l)]`` (``M + 1`` tokens);
      ``x = x + DropPath(CrossAttn(LN1(x), kv))``; ``x = x + f_l``;
      ``x = x + DropPath(MLP(LN2(x)))``;
    - the first block of a stage embeds the image (stride-4 stem) or the previous stage's
      map (Conv3x3/s2); the last one closes the stage into a map (LayerNorm).

    Nothing flows back from the side network into the ViT, so :meth:`step` (or
    :meth:`step_tokens`) only collects a layer; once a stage's layers are in,
    :meth:`run_stage` computes everything that reads the ViT for all of them at once
    (batched products over the stage's layers) and then runs the side blocks in turn.

    Args:
        embed_dims (int): ViT width ``D``.
        num_layers (int): ViT layers ``L`` (a multiple of 4 unless ``block_indices``
            is given).
        channels (Sequence[int]): Width of each of the 4 stages.
        num_heads (Sequence[int]): Cross-attention heads of each stage.
        mlp_ratio (float): Side-block MLP width / stage width. Defaults to 4.
        qkv_bias (bool): Bias on the side blocks' q, k, v. Defaults to True.
        drop_path_rate (float): Stochastic depth over the side blocks. Defaults to 0.
        meta_tokens (bool): Hold learned meta tokens ``M_l`` (1, M, D) per layer for
            the caller to insert into the ViT. Defaults to True.
        num_meta (int): Meta tokens per layer, ``M`` (``metaG_num`` in the released
            code). Defaults to 1.
        block_indices (Sequence[int], optional): The last ViT layer (0-based) of each
            of the 4 stages, increasing, ending at ``L - 1`` (the released code's
            ``block_indices``; ViT-B default ``(2, 5, 8, 11)``). Defaults to None:
            equal groups.
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
        num_meta: int = 1,
        block_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        channels, num_heads = list(channels), list(num_heads)
        check_stage_widths(channels, num_heads)
        if isinstance(num_meta, bool) or not isinstance(num_meta, int) or num_meta < 1:
            raise ValueError(f'num_meta must be a positive integer, got {num_meta!r}')
        if num_meta > 1 and not meta_tokens:
            raise ValueError(
                f'num_meta={num_meta} asks for meta tokens, but this side network inserts '
                'none (beside the ViT, host_grad=False, the key is the class token): '
                'remove num_meta'
            )
        self.channels = tuple(channels)
        self.depths = stage_depths(num_layers, block_indices)
        self.num_meta = num_meta if meta_tokens else 0
        self._stage_of = [
            (stage, block) for stage, depth in enumerate(self.depths) for block in range(depth)
        ]
        self.meta_tokens = (
            nn.ParameterList(
                nn.Parameter(torch.empty(1, num_meta, embed_dims)) for _ in range(num_layers)
            )
            if meta_tokens
            else None
        )
        self.net = HierarchicalSideNetwork(
            channels,
            num_heads,
            list(self.depths),
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            in_channels=in_channels,
        )
        self.bridges = nn.ModuleList(CastLinear(embed_dims, c) for c in channels)
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
        return self._stage_of[index]

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

    def meta(self, index: int, like: Tensor, state: SideState | None = None) -> Tensor:
        """``M_index`` for a batch of tokens ``like`` (B, N, D): ``(B, M, D)``; from
        ``state.meta`` where :meth:`cast_meta` cast them all at once."""
        tokens = self.meta_tokens if state is None or state.meta is None else state.meta
        return tokens[index].to(like.dtype).expand(like.shape[0], -1, -1)

    def cast_meta(self, state: SideState, dtype: torch.dtype) -> SideState:
        """``state`` with every layer's meta tokens in ``dtype``, cast in one copy (one
        kernel forward and one backward instead of one per layer each), where ``dtype``
        is not theirs - the tokens of a frozen host held in bf16."""
        if self.meta_tokens is None or self.meta_tokens[0].dtype == dtype:
            return state
        return replace(state, meta=cast_in_one_copy(list(self.meta_tokens), dtype))

    def step(
        self,
        state: SideState,
        index: int,
        image: Tensor,
        key: Tensor,
        patches: Tensor,
        branch: Tensor | None = None,
    ) -> SideState:
        """Hand the side network ViT layer ``index``; after the last layer of a stage,
        run that stage's side blocks (:meth:`run_stage`). Returns the next state.

        Args:
            state (SideState): This forward pass's state so far (left as it is).
            index (int): The ViT layer ``l``.
            image (Tensor): The input image ``(B, C, H, W)`` (read by the stem).
            key (Tensor): ``m_l``, the layer's key tokens ``(B, M, D)`` (or one,
                ``(B, D)``).
            patches (Tensor): ``F_l``, the layer's output patch map ``(B, h, w, D)``.
            branch (Tensor, optional): ``S_{l+1}`` ``(B, D/4, 2h, 2w)`` when the side
                reads a fine branch (its sub-bands ``(B, h, w, D)`` with
                ``state.branch_transform``).
        """
        if key.dim() == 2:
            key = key.unsqueeze(1)  # one key token: (B, D) -> (B, 1, D)
        layer = _Layer(None, key.shape[1], key, patches.flatten(1, 2), branch)
        return self._add(state, index, image, layer, tuple(patches.shape[1:3]))

    def step_tokens(
        self,
        state: SideState,
        index: int,
        image: Tensor,
        tokens: Tensor,
        num_keys: int,
        grid: tuple[int, int],
        branch: Tensor | None = None,
    ) -> SideState:
        """:meth:`step` for a layer whose keys and patch map are parts of one tensor:
        its output ``tokens`` ``(B, T, D)``, whose first ``num_keys`` tokens are
        ``m_l`` and whose last ``h * w`` (``grid``) are ``F_l``. A stage then bridges
        its layers' keys and patches with one product."""
        layer = _Layer(tokens, num_keys, None, None, branch)
        return self._add(state, index, image, layer, tuple(grid))

    def _add(
        self, state: SideState, index: int, image: Tensor, layer: _Layer, grid: tuple[int, int]
    ) -> SideState:
        stage, block = self.stage_of(index)
        if self.branch_bridges is not None and layer.branch is None:
            raise ValueError('this side network reads a fine branch: pass branch=S_{l+1}')
        state = replace(state, pending=(*state.pending, layer), grid=grid)
        if block == self.depths[stage] - 1:
            state = self.run_stage(state, stage, image)
        return state

    def run_stage(self, state: SideState, stage: int, image: Tensor) -> SideState:
        """Embed stage ``stage``, run its ``k`` side blocks on the layers in
        ``state.pending`` and close it into a map; returns the state with that map
        added and no layer pending.

        The side blocks depend on one another only through the side tokens; everything
        they read from the ViT runs once for the stage on the ``k`` layers stacked
        side by side (layer last, ``(B, tokens, k, D)``): one bridge product for the
        keys and the patch maps, one resize (over ``k * C_s`` channels), the ``k`` key
        LayerNorms as one group norm (group ``j`` normalised with layer ``j``'s weight
        and bias) and the cross-attentions' key side (:func:`key_terms`).
        """
        layers = state.pending
        blocks = self.net.blocks[stage]
        depth = len(blocks)
        first = sum(self.depths[:stage])
        norms = self.bridge_norms[first : first + depth]
        attns = [b.attn for b in blocks]
        # the norms' weights ride in the attention biases' copy; under autocast the
        # blocks' MLPs, the stage's embedding and its bridges join the copy: every weight
        # of the stage that feeds a product is cast at once, not at each product
        low = autocast_dtype(image.device.type)
        mlps = [(b.mlp[0], b.mlp[2]) for b in blocks] if low is not None else ()
        vectors = ([n.weight for n in norms], [n.bias for n in norms])
        weights = stage_weights(attns, vectors, mlps, low, self._product_weights(stage, low))
        cast = list(weights.tensors)  # empty without autocast: each module's own weights
        embed = self.net.embedding(stage)
        embed_weights = [cast.pop(0) for _ in embed.product_weights()] if cast else None
        bridged_by = [cast.pop(0), cast.pop(0)] if cast else []  # T_s's weight and bias
        branch_weights = (cast.pop(0), cast.pop(0)) if cast else None  # B_s's
        tokens, hw = embed(image if stage == 0 else state.fmap, embed_weights)
        bridge = self.bridges[stage]
        (h, w), keys = state.grid, layers[0].num_keys
        if layers[0].tokens is not None:
            # (B, T, k, D) -> (B, T, k, C_s) -> m_l (B, M, k, C_s), F_l (B, h*w, k, C_s)
            bridged = bridge(torch.stack([layer.tokens for layer in layers], dim=2), *bridged_by)
            other = bridged.shape[1] - keys - h * w
            meta, _, maps = bridged.split([keys, other, h * w], dim=1)
        else:
            meta = bridge(torch.stack([layer.keys for layer in layers], dim=2), *bridged_by)
            maps = bridge(torch.stack([layer.patches for layer in layers], dim=2), *bridged_by)
        batch, channels = maps.shape[0], maps.shape[-1]
        # f_l: (B, h, w, k * C_s) -> (B, H_s * W_s, k * C_s) -> (B, H_s * W_s, k, C_s)
        fine = resize_tokens(maps.reshape(batch, h, w, depth * channels), hw)
        fine = fine.unflatten(2, (depth, channels))
        # g_l = LN_l(T_s(m_l)): (B * M, k * C_s), one group per layer, normalised with that
        # layer's weight and bias
        g = F.group_norm(
            meta.reshape(batch * keys, depth * channels),
            depth,
            weights.extra[0].reshape(-1),
            weights.extra[1].reshape(-1),
            norms[0].eps,
        )
        # [g_l; t_l]: (B, M + 1, k, 2, C_s), t_l = mean_tokens(f_l), paired for k and v
        kv = paired_keys(g.reshape(meta.shape), fine.mean(dim=1, keepdim=True))
        terms = key_terms(attns, kv, weights)
        fold = not any(b.drops_path() for b in blocks)
        if fold:  # the output projection's bias joins f_l: (B, H_s * W_s, k, C_s)
            fine = fine + terms.proj_bias.to(fine.dtype)
        if self.branch_bridges is not None:
            branches = [layer.branch for layer in layers]
            branch = self._branch(stage, branches, hw, state.branch_transform, branch_weights)
            fine = fine + branch
        fines = fine.unbind(2)
        for j, block in enumerate(blocks):
            own = (terms.queries[j], terms.offsets[j], terms.values[j])
            own += (None if fold else terms.proj_bias[j],)
            own += (weights.mlp[j],) if weights.mlp else ()
            tokens = block(tokens, None, fines[j], terms=own)
        fmap = self.net.finish(stage, tokens, hw)
        return replace(state, maps=(*state.maps, fmap), pending=())

    def _product_weights(self, stage: int, low: torch.dtype | None) -> list[Tensor]:
        """Under autocast (``low``), the stage's weights that feed products besides its
        blocks': its embedding's convolution weights, its bridge and its branch bridge, in the
        order :meth:`run_stage` reads them; none without."""
        if low is None:
            return []
        own = [*self.net.embedding(stage).product_weights()]
        own += [self.bridges[stage].weight, self.bridges[stage].bias]
        if self.branch_bridges is not None:
            own += [self.branch_bridges[stage].weight, self.branch_bridges[stage].bias]
        return own

    def _branch(
        self,
        stage: int,
        branches: Sequence[Tensor],
        hw: tuple[int, int],
        transform: Callable[[Tensor], Tensor] | None,
        weights: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """``B_s(bilinear(S_{l+1}, (H_s, W_s)))`` of the stage's ``k`` layers as tokens
        ``(B, H_s*W_s, k, C_s)``, computed as ``bilinear(B_s(S_{l+1}))``: the same values
        (the bilinear weights of each output pixel sum to one, so the resize commutes
        with the affine ``B_s``), with the Linear on the branch's own grid - 4x fewer
        pixels on the stride-4 stage, and only that smaller map kept for its backward
        pass. ``weights``: ``B_s``'s weight and bias as the stage cast them (None: its
        own)."""
        depth, batch = len(branches), branches[0].shape[0]
        stacked = torch.stack(branches).flatten(0, 1)
        if transform is not None:  # T_{l+1} (k * B, h, w, D) -> S_{l+1}
            stacked = transform(stacked)
        bridge = self.branch_bridges[stage]
        # (k * B, D/4, 2h * 2w) -> (k * B, C_s, 2h * 2w): one product over the channels
        # of every pixel, kept NCHW as the transform returns it -> (k * B, C_s, 2h, 2w)
        flat = stacked.flatten(2)
        weight, bias = (bridge.weight, bridge.bias) if weights is None else weights
        weight = weight.to(flat.dtype).expand(flat.shape[0], -1, -1)
        projected = torch.baddbmm(bias.to(flat.dtype)[:, None], weight, flat)
        projected = projected.unflatten(2, stacked.shape[-2:])
        if tuple(projected.shape[-2:]) != tuple(hw):
            projected = resize_map(projected, hw)
        # (k * B, C_s, H_s, W_s) -> (k, B, C_s, H_s * W_s) -> (B, H_s * W_s, k, C_s)
        return projected.flatten(2).unflatten(0, (depth, batch)).permute(1, 3, 0, 2)


def stage_depths(num_layers: int, block_indices: Sequence[int] | None = None) -> tuple[int, ...]:
    """How many consecutive ViT layers feed each of the 4 stages: equal groups, or the
    groups that ``block_indices`` (each stage's last layer) close."""
    if block_indices is None:
        if num_layers % NUM_STAGES:
            raise ValueError(
                f'HST maps the ViT layers onto {NUM_STAGES} stages in equal groups, so the '
                f'number of layers must be divisible by {NUM_STAGES}; the host has '
                f'{num_layers}. Use a ViT with 4, 8, 12, ... layers, or give each '
                "stage's last layer with block_indices (e.g. (1, 3, 7, 9) for 10 layers)."
            )
        return (num_layers // NUM_STAGES,) * NUM_STAGES
    indices = list(block_indices)
    ends = [-1, *indices]
    if (
        len(indices) != NUM_STAGES
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices)
        or any(b <= a for a, b in zip(ends, ends[1:]))
        or indices[-1] != num_layers - 1
    ):
        raise ValueError(
            f'block_indices must give the last layer (0-based) of each of the '
            f'{NUM_STAGES} stages, strictly increasing and ending at the last layer '
            f'({num_layers - 1}), so that every layer feeds one stage; got {indices}. '
            f'E.g. {[num_layers * (s + 1) // NUM_STAGES - 1 for s in range(NUM_STAGES)]}.'
        )
    return tuple(b - a for a, b in zip(ends, ends[1:]))


def hst_side_count(
    embed_dims: int,
    num_layers: int,
    channels: Sequence[int],
    *,
    in_channels: int = 3,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = True,
    num_meta: int = 1,
    block_indices: Sequence[int] | None = None,
    branch_dims: int | None = None,
) -> int:
    """Trainable parameters of :class:`HSTSide`, from the widths alone.

    With ``D`` the ViT width, ``C_s`` the stage widths, ``k_s`` the side blocks of stage
    ``s`` and ``a`` the MLP ratio: the stem ``9 C_in C_1 + 4 C_1^2 + 5 C_1``; the patch
    embedding between stages ``9 C_s C_{s+1} + 3 C_{s+1}``; per side block
    ``(4 + 2a) C^2 + (9 + a) C`` (``3 C`` less without q/k/v biases); the stage norms
    ``2 C_s``; the bridges from the ViT ``(D + 1) C_s`` and their norms ``2 k_s C_s``;
    ``num_meta L D`` meta tokens (``num_meta=0``: none, the key is the class token);
    with a fine branch of width ``B`` (WST), ``(B + 1) C_s`` for its bridges.
    """
    depths = stage_depths(num_layers, block_indices)
    c1 = channels[0]
    total = 9 * in_channels * c1 + 4 * c1 * c1 + 5 * c1  # stem
    total += sum(9 * a * b + 3 * b for a, b in zip(channels[:-1], channels[1:]))
    block = [
        (4 + 2 * mlp_ratio) * c * c + (9 + mlp_ratio) * c - (0 if qkv_bias else 3 * c)
        for c in channels
    ]
    total += sum(k * int(n) for k, n in zip(depths, block))  # side blocks
    total += sum(2 * c for c in channels)  # stage norms
    total += sum((embed_dims + 1) * c + 2 * k * c for k, c in zip(depths, channels))
    if branch_dims is not None:
        total += sum((branch_dims + 1) * c for c in channels)
    return total + num_meta * num_layers * embed_dims


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
