"""Bottleneck adapters: Adapter (Houlsby et al., ICML 2019) and AdaptFormer (Chen et al.,
NeurIPS 2022)."""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from ...registry import MODELS
from ..layers.bottleneck import Bottleneck
from .base import BaseTuner, HostSpec, OneCopyCasts


class _Bottlenecks(OneCopyCasts):
    """For a tuner of :class:`Bottleneck` s in ``self.adapters`` (listed before
    :class:`BaseTuner`): each runs through :meth:`_bottleneck` with its weights as cast
    in one copy under autocast."""

    adapters: nn.ModuleDict

    def cast_layers(self) -> list[Bottleneck]:
        return list(self.adapters.values())

    def _bottleneck(self, key: str, x: Tensor) -> Tensor:
        adapter = self.adapters[key]
        return adapter(x, self.cast_weights(adapter))


@MODELS.register_module()
class Adapter(_Bottlenecks, BaseTuner):
    """Houlsby adapters: ``h + up(GELU(down(h)))`` on the attention and the MLP output.

    Inserted sequentially after each sub-layer's output projection (``proj`` and
    ``fc2``), before drop-path and the residual addition; ``up`` is zero-initialised,
    so the model is unchanged at init.

    Parameters per adapter: 2 * D * r + r + D; two per block. ViT-B/16, r = 8:
    2 x (2 x 768 x 8 + 8 + 768) x 12 = **313,536**.

    Args:
        bottleneck (int): r. Defaults to 8.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.Adapter', bottleneck=4)])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        1168
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True

    def __init__(self, bottleneck: int = 8, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.bottleneck = bottleneck
        self.adapters = nn.ModuleDict()

    def build(self, host: HostSpec) -> None:
        for spec in host.blocks:
            for name, layer in (('attn', spec.proj), ('mlp', spec.fc2)):
                key = f'{spec.index}_{name}'
                self.adapters[key] = Bottleneck(spec.dim, self.bottleneck, act='gelu')
                self.hook_module(layer, partial(self._hook, key))

    def param_count(self, host: HostSpec) -> int:
        """Two bottlenecks per block (after attention, after the MLP), each
        ``D r + r + r D + D``."""
        return sum(
            2 * (2 * spec.dim * self.bottleneck + self.bottleneck + spec.dim)
            for spec in host.blocks
        )

    def reset_parameters(self) -> None:
        for adapter in self.adapters.values():
            adapter.reset_parameters()

    def _hook(self, key: str, module, inputs, output):
        return output + self._bottleneck(key, output)


@MODELS.register_module()
class AdaptFormer(_Bottlenecks, BaseTuner):
    """AdaptFormer: a scaled bottleneck in parallel with every MLP (paper Eq. 4).

    ``x' = x + MLP(LN(x)) + s * up(ReLU(down(LN(x))))``: the adapter reads the MLP's
    input and its output is added after the MLP branch (not drop-pathed). ``down`` is
    kaiming-uniform, ``up`` zero, so the model is unchanged at init.

    Parameters per block: 2 * D * r + r + D. ViT-B/16, r = 64: **1,189,632**
    (r = 8: 156,768).

    Args:
        bottleneck (int): r. Defaults to 64.
        scale (float): s. Defaults to 0.1.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.AdaptFormer', bottleneck=4)])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        584
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True

    def __init__(self, bottleneck: int = 64, scale: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.bottleneck = bottleneck
        self.scale = scale
        self.adapters = nn.ModuleDict()

    def build(self, host: HostSpec) -> None:
        for spec in host.blocks:
            key = str(spec.index)
            self.adapters[key] = Bottleneck(spec.dim, self.bottleneck, act='relu')
            self.hook_module(spec.ffn, partial(self._hook, key))

    def param_count(self, host: HostSpec) -> int:
        """One bottleneck per block beside the MLP: ``D r + r + r D + D``."""
        return sum(
            2 * spec.dim * self.bottleneck + self.bottleneck + spec.dim for spec in host.blocks
        )

    def reset_parameters(self) -> None:
        for adapter in self.adapters.values():
            adapter.reset_parameters()

    def _hook(self, key: str, module, inputs, output):
        return output + self.scale * self._bottleneck(key, inputs[0])
