"""WST: wavelet-based multi-scale tuning (Zeng, Huang and Wang, AAAI 2025)."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.wavelet import DWT2d, IDWT2d
from .base import BaseTuner, TokenContext

#: ``ctx.state`` key under which WST publishes its branch states [S_0, ..., S_L].
WST_STATES = 'wst_states'


@MODELS.register_module()
class WST(BaseTuner):
    """Wavelet-based multi-scale tuning: a fine patch branch beside a frozen ViT.

    Paper: Jia Zeng, Lan Huang and Kangping Wang, "WST: Wavelet-Based Multi-scale
    Tuning for Visual Transfer Learning", AAAI 2025
    (https://doi.org/10.1609/aaai.v39i21.34387). The paper states the method in its
    Eqs. 1-9 (fine-tuning patch embedding, wavelet fine-tuning block and how its
    output joins the backbone); the step numbers below are those of mmwst's method
    specification, which restates them.

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

    Branch states for later use: during a forward pass ``ctx.state[self]`` is a dict
    with ``'states'``, the list ``[S_0, ..., S_L]`` of branch states, each
    ``(B, D / 4, 2h, 2w)``, and ``'outputs'``, the list ``[W_0, ..., W_{L-1}]`` of block
    outputs as tokens ``(B, h * w, D)``. Another tuner placed after this one in the
    host's ``tuners`` list (a dense side network, for example) can read them in its
    own ``before_block`` / ``after_block`` / ``after_blocks`` hooks.

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

    def __init__(
        self,
        rank: int = 2,
        scale: float = 1.0,
        wavelet: str = 'haar',
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
        self.rank = int(rank)
        self.scale = float(scale)
        self.wavelet = wavelet
        self.dwt = DWT2d(wavelet)  # validates the wavelet name
        self.idwt = IDWT2d(wavelet)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()

    # ---- construction ------------------------------------------------------------------
    def build(self, host) -> None:
        kind = getattr(host, 'host_kind', None)
        if kind != 'vit':
            raise ValueError(
                f'WST runs beside a plain ViT (host_kind "vit"), but it was given '
                f'{type(host).__name__} (host_kind {kind!r}): its wavelet blocks need one '
                'fixed patch grid for all layers. Use mmwst.TunedVisionTransformer as the '
                'backbone.'
            )
        patch_h, patch_w = host.patch_size
        if patch_h % 2 or patch_w % 2:
            raise ValueError(
                f'WST embeds the image at half the backbone patch size, so the patch size '
                f'must be even; the host has patch size {(patch_h, patch_w)}. Use a host '
                'with an even patch size (e.g. 16).'
            )
        dim = host.embed_dims
        if dim % 4:
            raise ValueError(
                f'WST gives its branch a quarter of the backbone width (one DWT level maps '
                f'D / 4 channels to D), so the width must be divisible by 4; the host has '
                f'embed_dims={dim}. Use a host whose width is a multiple of 4.'
            )
        widths = {spec.dim for spec in host.blocks}
        assert widths == {dim}, f'a plain ViT has one width, got {sorted(widths)}'
        self.embed_dims = dim
        self.side_dims = dim // 4
        half_patch = (patch_h // 2, patch_w // 2)
        in_channels = host.patch_embed.projection.in_channels
        self.patch_embed = nn.Conv2d(
            in_channels, self.side_dims, kernel_size=half_patch, stride=half_patch, bias=True
        )
        for _ in host.blocks:
            self.down.append(nn.Linear(dim, self.rank))
            self.up.append(nn.Linear(self.rank, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.patch_embed.reset_parameters()
        for linear in (*self.down, *self.up):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    # ---- forward: the branch beside the frozen blocks -----------------------------------
    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        state = self.patch_embed(ctx.image)  # (B, C_in, H, W) -> (B, D / 4, 2h, 2w)
        h, w = ctx.patch_resolution
        assert state.shape[-2:] == (2 * h, 2 * w), (tuple(state.shape), (h, w))
        ctx.state[self] = dict(states=[state], outputs=[])
        # published for dense consumers (the HST side network reads S_{l+1} per layer)
        ctx.state[WST_STATES] = ctx.state[self]['states']
        return x

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        branch = ctx.state[self]
        assert len(branch['states']) == index + 1, 'wavelet blocks must run in order'
        batch, prefix = x.shape[0], ctx.num_prefix
        h, w = ctx.patch_resolution
        # (B, D / 4, 2h, 2w) -> (B, D, h, w) -> (B, D, h * w) -> (B, h * w, D)
        bands = self.dwt(branch['states'][-1]).flatten(2).transpose(1, 2)
        mixed = bands + x[:, prefix:]  # Z_l, (B, h * w, D)
        out = self.up[index](self.down[index](mixed))  # W_l, (B, h * w, D)
        # (B, h * w, D) -> (B, D, h * w) -> (B, D, h, w)
        grid = out.transpose(1, 2).reshape(batch, self.embed_dims, h, w)
        branch['states'].append(self.idwt(grid))  # S_{l+1}, (B, D / 4, 2h, 2w)
        branch['outputs'].append(out)
        return x

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        out = ctx.state[self]['outputs'][index]  # W_l, (B, h * w, D)
        prefix = ctx.num_prefix
        patches = x[:, prefix:] + self.scale * out.to(x.dtype)
        return torch.cat([x[:, :prefix], patches], dim=1)

    def extra_repr(self) -> str:
        return f'rank={self.rank}, scale={self.scale}, wavelet={self.wavelet!r}'
