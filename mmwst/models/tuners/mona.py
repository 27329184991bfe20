"""Mona: the multi-cognitive visual adapter (Yin et al., CVPR 2025)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import conv2d_with
from .base import BaseTuner, HostSpec, OneCopyCasts, TokenContext

#: the depthwise kernels Mona averages ("multi-cognitive": three receptive fields)
KERNELS = (3, 5, 7)


class MonaLayer(nn.Module):
    """One Mona adapter on the tokens of an ``h x w`` grid, ``(B, h*w, D)`` in, same out.

    ``z = LN(x) * gamma + x * gamma_x`` (the scaled LayerNorm input), a down-projection to
    ``r`` channels laid out on the grid, ``q = mean(DW3(p), DW5(p), DW7(p)) + p`` and
    ``q + Conv1x1(q)``, then GELU, dropout and the up-projection, added to ``x``.
    """

    def __init__(self, dim: int, bottleneck: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.gamma = nn.Parameter(torch.empty(dim))
        self.gamma_x = nn.Parameter(torch.empty(dim))
        self.down = nn.Linear(dim, bottleneck)
        self.dw = nn.ModuleList(
            nn.Conv2d(bottleneck, bottleneck, k, padding=k // 2, groups=bottleneck) for k in KERNELS
        )
        self.mix = nn.Conv2d(bottleneck, bottleneck, 1)
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The release's values: LayerNorm 1 / 0, ``gamma`` 1e-6, ``gamma_x`` 1, both
        Linears truncated-normal (std 0.02) with zero bias (the host's init applied to
        every Linear before the frozen weights load), the convolutions PyTorch's default."""
        self.norm.reset_parameters()
        nn.init.constant_(self.gamma, 1e-6)
        nn.init.ones_(self.gamma_x)
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
        for conv in (*self.dw, self.mix):
            conv.reset_parameters()

    def product_weights(self) -> list[Tensor]:
        """The weights (and the Linears' biases) of its products and convolutions, in
        the order :meth:`forward` takes them: down, the three depthwise convolutions, the
        1x1, up. The convolutions' biases stay their own: inductor's convolution takes
        no bias that is a view."""
        convs = [conv.weight for conv in (*self.dw, self.mix)]
        return [self.down.weight, self.down.bias, *convs, self.up.weight, self.up.bias]

    def forward(
        self, x: Tensor, grid: tuple[int, int], weights: list[Tensor] | None = None
    ) -> Tensor:
        """``x`` (B, h*w, D) on the ``grid`` -> (B, h*w, D). ``weights``:
        :meth:`product_weights` as the caller cast them (None: its own)."""
        h, w = grid
        down_w, down_b, *convs, up_w, up_b = self.product_weights() if weights is None else weights
        z = self.norm(x) * self.gamma + x * self.gamma_x
        p = F.linear(z, down_w, down_b)
        b, n, r = p.shape
        p = p.transpose(1, 2).reshape(b, r, h, w)
        maps = [conv2d_with(conv, p, w, conv.bias) for conv, w in zip(self.dw, convs)]
        total = maps[0]
        for other in maps[1:]:  # summed from the first map, not from 0: one kernel less
            total = total + other
        q = total / len(maps) + p
        q = q + conv2d_with(self.mix, q, convs[-1], self.mix.bias)
        q = q.reshape(b, r, n).transpose(1, 2)
        return x + F.linear(self.drop(F.gelu(q)), up_w, up_b)

    @staticmethod
    def count(dim: int, bottleneck: int) -> int:
        """``2 D r + 5 D + r^2 + 88 r``: down ``D r + r``, up ``r D + D``, the depthwise
        convolutions ``r (9 + 25 + 49) + 3 r``, the 1x1 ``r^2 + r``, the LayerNorm ``2 D``,
        ``gamma`` and ``gamma_x`` ``D`` each (r = 64: ``133 D + 9,728``)."""
        kernels = sum(k * k for k in KERNELS) + len(KERNELS)
        return 2 * dim * bottleneck + 5 * dim + bottleneck * bottleneck + (kernels + 2) * bottleneck


@MODELS.register_module()
class Mona(OneCopyCasts, BaseTuner):
    """Mona (Yin et al., "5%>100%: Breaking Performance Shackles of Full Fine-Tuning on
    Visual Recognition Tasks", CVPR 2025): two adapters per block on the residual stream,
    each after a residual addition::

        x = x + Attn(LN1(x));  x = Mona_1(x);  x = x + MLP(LN2(x));  x = Mona_2(x)

    as the authors' release places them in Swin's blocks; on a ViT the same two places.
    Each adapter is a :class:`MonaLayer`: a scaled LayerNorm input, a bottleneck of
    ``r`` channels with 3x3, 5x5 and 7x7 depthwise convolutions on the token grid, GELU,
    dropout 0.1 and an up-projection.

    Tokens that are not on the patch grid - the class token, register tokens, prompts -
    pass through both adapters unchanged (the release, on Swin, has none). ``Mona_1``
    runs as a pre-hook of the block's MLP sub-layer, which the hosts call as
    ``ffn(LN2(x), identity=x)``: the hook replaces ``x`` by ``Mona_1(x)`` in both places
    (``LN2`` runs again on the new tokens); ``Mona_2`` runs on the block's output.

    Not unchanged at init (the up-projection is not zero, as in the release) and not
    mergeable (the convolutions see the grid).

    Parameters per block of width ``D``: ``2 (2 D r + 5 D + r^2 + 88 r)``; r = 64:
    ``2 (133 D + 9,728)``. ViT-B/16 (24 adapters): **2,684,928**; Swin-B (widths
    128 / 256 / 512 / 1024 over 2 / 2 / 18 / 2 blocks, 48 adapters): **3,667,456**.

    Args:
        bottleneck (int): r. Defaults to 64 (the release's).
        dropout (float): after the GELU. Defaults to 0.1.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.Mona', bottleneck=8)])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        5760
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    supported_hosts = ('vit', 'swin')
    host_reason = (
        "SAM's encoder runs its blocks on windows of (B, h, w, D) maps; Mona is defined on "
        'token sequences of ViT and Swin blocks'
    )

    def __init__(self, bottleneck: int = 64, dropout: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.bottleneck = bottleneck
        self.dropout = dropout
        self.after_attn = nn.ModuleList()
        self.after_mlp = nn.ModuleList()
        #: the running forward's token context: the MLP's pre-hook reads the tokens in
        #: front of the grid there when the block runs, after every tuner's before_block
        self._ctx: TokenContext | None = None

    def build(self, host: HostSpec) -> None:
        for spec in host.blocks:
            self.after_attn.append(MonaLayer(spec.dim, self.bottleneck, self.dropout))
            self.after_mlp.append(MonaLayer(spec.dim, self.bottleneck, self.dropout))
            handle = spec.ffn.register_forward_pre_hook(
                partial(self._before_mlp, spec.index, spec.norm2), with_kwargs=True
            )
            self._handles.append(handle)

    def param_count(self, host: HostSpec) -> int:
        """Two :class:`MonaLayer` per block: ``2 (2 D r + 5 D + r^2 + 88 r)``."""
        return sum(2 * MonaLayer.count(spec.dim, self.bottleneck) for spec in host.blocks)

    def reset_parameters(self) -> None:
        for layer in (*self.after_attn, *self.after_mlp):
            layer.reset_parameters()

    # ---- the two places --------------------------------------------------------------
    def cast_layers(self) -> list[MonaLayer]:
        """Every adapter (eight product tensors each), cast in one copy under autocast
        (:class:`~.base.OneCopyCasts`)."""
        return [*self.after_attn, *self.after_mlp]

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._ctx = ctx
        return super().before_blocks(x, ctx)

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._ctx = None
        return super().after_blocks(x, ctx)

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        layer = self.after_mlp[index]
        return self._on_grid(
            layer, x, ctx.num_prefix, ctx.patch_resolution, self.cast_weights(layer)
        )

    def _before_mlp(self, index: int, norm2: nn.Module, module, args, kwargs):
        if 'identity' not in kwargs:
            raise RuntimeError(
                f'Mona expects block {index} to call its MLP as ffn(norm2(x), identity=x); '
                f'{type(module).__name__} was called without identity='
            )
        ctx = self._ctx
        if ctx is None:
            raise RuntimeError(
                f"Mona: block {index} ran outside its host's forward pass (the adapters "
                'need the token context it sets up); call the backbone, not its blocks'
            )
        layer = self.after_attn[index]
        x = self._on_grid(
            layer,
            kwargs['identity'],
            ctx.num_prefix,
            ctx.patch_resolution,
            self.cast_weights(layer),
        )
        return (norm2(x), *args[1:]), dict(kwargs, identity=x)

    @staticmethod
    def _on_grid(
        layer: MonaLayer,
        x: Tensor,
        prefix: int,
        grid: tuple[int, int],
        weights: list[Tensor] | None = None,
    ) -> Tensor:
        h, w = grid
        if x.shape[1] != prefix + h * w:
            raise RuntimeError(
                f'Mona: {x.shape[1]} tokens, expected {prefix} in front of a {h}x{w} grid; '
                "a tuner that adds tokens must keep the context's num_prefix up to date"
            )
        if prefix == 0:
            return layer(x, grid, weights)
        return torch.cat([x[:, :prefix], layer(x[:, prefix:], grid, weights)], dim=1)
