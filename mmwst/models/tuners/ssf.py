"""SSF: scale and shift deep features (Lian et al., NeurIPS 2022)."""

from __future__ import annotations

from functools import partial

from torch import nn

from ...registry import MODELS
from ..layers.scale_shift import ScaleShiftPairs
from .base import BaseTuner, HostSpec


@MODELS.register_module()
class SSF(BaseTuner):
    """Scale-and-shift every operation's output: ``y = x * gamma + beta`` (paper Eq. 2).

    Positions, for each block: the outputs of ``qkv``, ``proj``, ``fc1``, ``fc2``,
    ``norm1`` and ``norm2``; plus the patch-embedding output and every final norm.
    ``gamma ~ N(1, std^2)``, ``beta ~ N(0, std^2)`` (not identity at init, as in the
    paper). Mergeable: each pair folds into the preceding Linear / LayerNorm / patch
    projection, so inference costs nothing extra.

    Parameters (ViT-B/16): 2 x (2304 + 768 + 3072 + 768 + 768 + 768) per block x 12
    + 2 x 768 (patch embedding) + 2 x 768 (final norm) = **205,824**.

    Args:
        std (float): Standard deviation of the initialisation. Defaults to 0.02.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.SSF')])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        1280
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    mergeable = True

    def __init__(self, std: float = 0.02, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.std = std
        self.pairs = ScaleShiftPairs()

    def build(self, host: HostSpec) -> None:
        embed = host.patch_embed
        self._add('patch_embed', embed, embed.projection.out_channels)
        for spec in host.blocks:
            for name in ('qkv', 'proj', 'fc1', 'fc2'):
                linear = getattr(spec, name)
                self._add(f'{spec.index}_{name}', linear, linear.out_features)
            for name in ('norm1', 'norm2'):
                norm = getattr(spec, name)
                self._add(f'{spec.index}_{name}', norm, norm.normalized_shape[0])
        for i, norm in enumerate(host.final_norms()):
            self._add(f'final{i}', norm, norm.normalized_shape[0])
        self.reset_parameters()

    def param_count(self, host: HostSpec) -> int:
        """A scale and a shift per channel after the patch embedding, after q/k/v, the
        attention output, fc1, fc2 and both norms of every block, and after each final
        norm: ``2 x`` the sum of those widths."""
        widths = host.patch_embed.projection.out_channels
        for spec in host.blocks:
            widths += sum(getattr(spec, n).out_features for n in ('qkv', 'proj', 'fc1', 'fc2'))
            widths += 2 * spec.dim
        widths += sum(norm.normalized_shape[0] for norm in host.final_norms())
        return 2 * widths

    def _add(self, key: str, module: nn.Module, dim: int) -> None:
        self.pairs.add(key, module, dim)
        self.hook_module(module, partial(self.pairs.output_hook, key))

    def reset_parameters(self) -> None:
        self.pairs.reset_parameters(self.std)

    # ---- merging: fold (gamma, beta) into the layer that produced the output ------------
    def merge(self, host: HostSpec) -> None:
        self.pairs.merge()

    def unmerge(self, host: HostSpec) -> None:
        self.pairs.unmerge()
