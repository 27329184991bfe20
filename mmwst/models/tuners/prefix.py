"""Prefix tuning (Li and Liang, ACL 2021), the baseline that V-PETL's PATT revisits."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.tunable import concat_kv
from .base import BaseTuner, HostSpec, OneCopyCasts


class PrefixEncoder(nn.Module):
    """One block's prefix: ``P`` learned tokens through ``Linear-tanh-Linear``.

    ``embedding`` ``(P, D)`` -> ``Linear(D, hidden)`` -> tanh -> ``Linear(hidden, 2D)``
    gives ``(P, 2D)``: the block's extra keys ``[:, :D]`` and values ``[:, D:]``.

    Args:
        num_tokens (int): P.
        dim (int): D, the block's width.
        hidden (int): Width of the reparameterisation.
    """

    def __init__(self, num_tokens: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(num_tokens, dim))
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, 2 * dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding)  # N(0, 1), as nn.Embedding
        self.down.reset_parameters()
        self.up.reset_parameters()

    def product_weights(self) -> list[Tensor]:
        """The tokens and both Linears' weights and biases, in the order :meth:`forward`
        takes them."""
        return [self.embedding, self.down.weight, self.down.bias, self.up.weight, self.up.bias]

    def forward(self, weights: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """The prefix keys and values, each ``(P, D)``; ``weights``:
        :meth:`product_weights` as the caller cast them (None: its own)."""
        if weights is None:
            return self.up(torch.tanh(self.down(self.embedding))).chunk(2, dim=-1)
        tokens, down_w, down_b, up_w, up_b = weights
        hidden = torch.tanh(F.linear(tokens, down_w, down_b))
        return F.linear(hidden, up_w, up_b).chunk(2, dim=-1)


@MODELS.register_module()
class PrefixTuning(OneCopyCasts, BaseTuner):
    r"""Learned prefix keys and values in every attention layer (reparameterised).

    Li and Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation",
    ACL 2021 (Sec. 4: prefix activations with the reparameterisation
    ``P = MLP(P')``, written out below), as
    the classic baseline of V-PETL (Yu et al., arXiv 2210.00788). Each block owns
    ``num_tokens`` learned tokens ``E`` (``P x D``); a ``Linear(D, hidden)`` - tanh -
    ``Linear(hidden, 2D)`` maps them to ``P`` key and ``P`` value vectors, which are
    split per head and appended to the block's keys and values along the token axis:

    .. math::

        [P_K, P_V] = \tanh(E W_1 + b_1) W_2 + b_2, \quad
        \mathrm{Attn}(Q, [K; P_K], [V; P_V]).

    Queries are unchanged, so the sequence length and the output format stay the
    same. On Swin the prefixes join the keys and values of every window (with zero
    relative position bias, never masked by the shifted-window mask).

    Init: ``E`` ~ N(0, 1) (as ``nn.Embedding``), both Linear layers PyTorch's default;
    the model is **not** unchanged at init. Not mergeable into the host weights (for
    inference the reparameterisation can be evaluated once: :meth:`prefix` gives the
    ``2 * P * D`` numbers per block that remain).

    Parameters per block of width ``D``: ``P*D + D*h + h + h*2D + 2D``. ViT-B/16 with
    the defaults (P = 10, h = 512): 12 x 1,189,376 = **14,272,512** while training;
    12 x 2 x 10 x 768 = 184,320 once the prefixes are evaluated.

    Args:
        num_tokens (int): Prefix tokens P per block. Defaults to 10.
        hidden (int): Width h of the reparameterisation MLP. Defaults to 512 (Li and
            Liang's choice).
        init_cfg (dict, optional): mmengine init config. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> tuner = dict(type='mmwst.PrefixTuning', num_tokens=4, hidden=16)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[tuner])
        >>> model(torch.rand(2, 3, 32, 32))[0].shape
        torch.Size([2, 32])
    """

    supported_hosts = ('vit', 'swin')
    host_reason = (
        "It adds key/value tokens to every attention, which SAM's windowed attention has no "
        'place for (every token there sits on the patch grid); use a ViT or a Swin host.'
    )

    def __init__(self, num_tokens: int = 10, hidden: int = 512, init_cfg=None) -> None:
        super().__init__(init_cfg)
        for name, value in (('num_tokens', num_tokens), ('hidden', hidden)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f'PrefixTuning {name} must be an int, got {type(value).__name__} ({value!r})'
                )
            if value < 1:
                raise ValueError(f'PrefixTuning {name} must be >= 1, got {value}')
        self.num_tokens = num_tokens
        self.hidden = hidden
        self.encoders = nn.ModuleDict()

    def param_count(self, host: HostSpec) -> int:
        """Per block of width D: ``P D + D h + h + h 2D + 2D``."""
        n, h = self.num_tokens, self.hidden
        return sum(n * d + d * h + h + h * 2 * d + 2 * d for d in (s.dim for s in host.blocks))

    def build(self, host: HostSpec) -> None:
        for spec in host.blocks:
            key = str(spec.index)
            self.encoders[key] = PrefixEncoder(self.num_tokens, spec.dim, self.hidden)
            self.hook_kv(spec.attn, partial(self._append_prefix, key))

    def reset_parameters(self) -> None:
        for encoder in self.encoders.values():
            encoder.reset_parameters()

    def cast_layers(self) -> list[PrefixEncoder]:
        """Every encoder (its tokens and both Linears), cast in one copy under autocast
        (:class:`~.base.OneCopyCasts`)."""
        return list(self.encoders.values())

    def prefix(self, index: int) -> tuple[Tensor, Tensor]:
        """Block ``index``'s prefix keys and values, each ``(num_tokens, D)``."""
        return self.encoders[str(index)]()

    def _append_prefix(self, key: str, x: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        heads, head_dims = k.shape[1], k.shape[3]  # k, v: (B, heads, N, head_dims)
        encoder = self.encoders[key]
        pk, pv = encoder(self.cast_weights(encoder))  # (P, D) each
        # (P, D) -> (1, P, heads, head_dims) -> (1, heads, P, head_dims)
        pk = pk.reshape(1, self.num_tokens, heads, head_dims).transpose(1, 2)
        pv = pv.reshape(1, self.num_tokens, heads, head_dims).transpose(1, 2)
        return concat_kv(k, v, pk, pv)  # (B, heads, N + P, head_dims)
