"""WST: wavelet-based multi-scale tuning (Zeng, Huang and Wang, AAAI 2025)."""

from __future__ import annotations

import numbers

from torch import Tensor

from ...registry import MODELS
from ..layers.casting import autocast_dtype
from ..layers.wavelet import DWT2d
from ..layers.wst_branch import WSTBranch, add_to_patches, patch_map, wst_branch_count
from .base import BaseTuner, HostSpec, TokenContext

#: ``ctx.state`` key (with the tuner) of the bottlenecks cast once under autocast
BOTTLENECKS = 'wst_bottlenecks'


@MODELS.register_module()
class WST(BaseTuner):
    """Wavelet-based multi-scale tuning: a fine patch branch beside a frozen ViT.

    Paper: Jia Zeng, Lan Huang and Kangping Wang, "WST: Wavelet-Based Multi-scale
    Tuning for Visual Transfer Learning", AAAI 2025
    (https://doi.org/10.1609/aaai.v39i21.34387). The paper states the method in its
    Eqs. 1-9 (fine-tuning patch embedding, wavelet fine-tuning block and how its
    output joins the backbone); the steps below restate them (as does docs/methods.md).

    A trainable branch embeds the image at half the backbone's patch size ``p`` and
    with a quarter of its width ``D``, so one level of a 2-D discrete wavelet
    transform brings it exactly to the backbone's patch grid and width. For an input
    of ``H x W`` pixels the backbone has ``h x w = H / p x W / p`` patch tokens.

    0. Fine patch embedding: ``S_0 = Conv2d(C_in -> D / 4, kernel p / 2,
       stride p / 2, bias)(image)``, shape ``(B, D / 4, 2h, 2w)``. No norm, no
       position embedding, PyTorch's default conv initialisation.

    Then one wavelet block per ViT layer ``l = 0 .. L - 1``, with ``X_l`` the tokens
    entering block ``l`` and ``X_l[:, patch]`` its ``h * w`` patch tokens (the class
    token and any other prefix tokens, ``ctx.num_prefix`` of them, are excluded):

    1. ``T_l = DWT(S_l)``: ``(B, D, h, w)``, channels ``[LL | LH | HL | HH]``
       (each ``D / 4`` wide), flattened row-major to ``(B, h * w, D)``.
    2. ``Z_l = T_l + X_l[:, patch]``.
    3. ``W_l = U_l(D_l(Z_l))`` with ``D_l = Linear(D -> r)`` and
       ``U_l = Linear(r -> D)``, both with bias, no activation, no norm.
    4. ``S_{l+1} = IDWT(W_l)`` with ``W_l`` laid out as ``(B, D, h, w)``: the branch
       state is replaced, not accumulated.
    5. The frozen block runs on ``X_l`` as usual; its output's patch tokens then get
       ``s * W_l`` added (``X_{l+1}[:, patch] += s * W_l``); the class token is
       untouched.

    For classification the paper averages the last block's patch tokens and applies
    the frozen final LayerNorm: build the host with ``out_type='avg_patch'`` (see
    ``configs/wst``). The method is not the identity at init (``U_l`` is not
    zero-initialised) and cannot be merged into the host's weights.

    Since the wavelet is orthogonal, ``DWT(S_{l+1}) = DWT(IDWT(W_l)) = W_l``: step 1 of
    the next layer needs no transform, and the branch carries its state as sub-bands
    (``T_0 = DWT(S_0)``, ``T_{l+1} = W_l``); the values equal the steps above to
    floating-point rounding, and only ``S_0`` is ever transformed.

    The math lives in :class:`~mmwst.models.layers.WSTBranch` (``self.branch``); this
    tuner is its one driver, from the host's token hooks, in classification and in the
    dense backbone (:class:`~mmwst.models.backbones.DenseTunedViT` adds it as a part).
    The state ``T_l`` lives in the pass's ``ctx.state[tuner]``, replaced at each step;
    after the blocks it holds ``T_L = W_{L-1}``, which the dense backbone and HST's side
    network read.

    Initialisation: ``D_l`` and ``U_l`` weights ``trunc_normal(std=0.02)``, biases 0;
    the fine patch embedding uses ``nn.Conv2d``'s default initialisation.

    Parameters, with ``C_in`` input channels, ``k = p / 2``, ``d_s = D / 4`` and ``L``
    blocks: ``C_in * d_s * k * k + d_s + L * (D * r + r + r * D + D)``. ViT-B/16, r = 2:
    3 x 192 x 8 x 8 + 192 = 37,056 for the fine patch embedding, plus
    12 x (768 x 2 + 2 + 2 x 768 + 768) = 12 x 3,842 for the blocks, **83,160** in all.

    Args:
        rank (int): ``r``, the width between ``D_l`` and ``U_l``. Defaults to 2.
        scale (float): ``s``, the factor on the branch output added to the backbone's
            patch tokens. A per-task hyper-parameter: the released settings use 10
            for caltech101 and 0.1 for dtd. Defaults to 1.0.
        feedback (bool): Add ``s * W_l`` to the block's patch tokens (step 5). False
            runs the branch beside the host without writing back (the dense backbone
            beside the ViT, where the ViT computes its frozen features exactly).
            Defaults to True.
        wavelet (str): Name of an orthogonal PyWavelets wavelet for the DWT / IDWT
            (``'haar'``, ``'db2'``, ``'sym4'``...). Longer filters extend the branch
            state periodically at its borders (see
            :class:`~mmwst.models.layers.DWT2d`). Defaults to ``'haar'``.
        init_cfg (dict | list[dict], optional): mmengine initialisation config.
            Defaults to None.

    Raises:
        ValueError: when built on a host other than a plain ViT, when the host's
            patch size is odd, or when its width is not divisible by 4.

    Examples:
        >>> import torch
        >>> import mmwst.models.tuners.wst  # noqa: F401  (registers the class)
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(
        ...     arch=arch, img_size=32, patch_size=8, out_type='avg_patch',
        ...     tuners=[dict(type='mmwst.WST', rank=2, scale=10.0)])
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    supported_hosts = ('vit', 'sam')  # one patch grid throughout
    host_reason = (
        'Its wavelet blocks need one fixed patch grid for all layers; use '
        'mmwst.TunedVisionTransformer as the backbone.'
    )

    def __init__(
        self,
        rank: int = 2,
        scale: float = 1.0,
        wavelet: str = 'haar',
        feedback: bool = True,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg)
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
            raise ValueError(f'WST rank must be a positive integer, got {rank!r}; e.g. rank=2')
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(
                f'WST scale must be a real number, got {type(scale).__name__}: {scale!r}; '
                'e.g. scale=10.0 (caltech101) or scale=0.1 (dtd)'
            )
        DWT2d(wavelet)  # an unknown wavelet fails here, before the host is built
        self.rank = int(rank)
        self.scale = float(scale)
        self.wavelet = wavelet
        self.feedback = bool(feedback)

    # ---- construction ------------------------------------------------------------------
    def build(self, host: HostSpec) -> None:
        widths = {spec.dim for spec in host.blocks}
        assert widths == {host.embed_dims}, f'a plain ViT has one width, got {sorted(widths)}'
        self.branch = WSTBranch(
            host.in_channels,
            host.embed_dims,
            host.patch_size,
            len(host.blocks),
            rank=self.rank,
            wavelet=self.wavelet,
        )

    def param_count(self, host: HostSpec) -> int:
        """The branch's count (:func:`~mmwst.models.layers.wst_branch.wst_branch_count`):
        ``C_in (D/4) (p/2)^2 + D/4`` for the fine patch embedding, ``2 r D + r + D`` per
        block for its bottleneck (ViT-B/16, r = 2: 83,160)."""
        return wst_branch_count(
            host.in_channels, host.embed_dims, host.patch_size, len(host.blocks), self.rank
        )

    def reset_parameters(self) -> None:
        self.branch.reset_parameters()

    # ---- forward: the branch beside the frozen blocks -----------------------------------
    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        # this pass's state: T_l = DWT(S_l), the branch in the wavelet domain
        ctx.state[self] = self.branch.embed(ctx.image)  # T_0: (B, h, w, D)
        # under autocast, every layer's bottleneck cast to its type in one copy
        low = autocast_dtype(ctx.image.device.type)
        if low is not None:
            ctx.state[BOTTLENECKS, self] = self.branch.cast_bottlenecks(low)
        return x

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        patches = patch_map(x, ctx.num_prefix, ctx.patch_resolution)  # X_l: (B, h, w, D)
        cast = ctx.state.get((BOTTLENECKS, self))
        weights = None if cast is None else cast[index]
        # W_l, which is also T_{l+1} = DWT(IDWT(W_l))
        ctx.state[self] = self.branch.step(index, ctx.state[self], patches, weights)
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        ctx.state.pop((BOTTLENECKS, self), None)
        return x

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        if not self.feedback:
            return x
        return add_to_patches(x, ctx.num_prefix, ctx.state[self], self.scale)

    def extra_repr(self) -> str:
        text = f'rank={self.rank}, scale={self.scale}, wavelet={self.wavelet!r}'
        return text if self.feedback else text + ', feedback=False'
