"""SSF: scale and shift deep features (Lian et al., NeurIPS 2022)."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.scale_shift import fold_scale_shift, unfold_scale_shift
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
        self.gamma = nn.ParameterDict()
        self.beta = nn.ParameterDict()

    def build(self, host: HostSpec) -> None:
        self._targets = {}
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
        self.gamma[key] = nn.Parameter(torch.ones(dim))
        self.beta[key] = nn.Parameter(torch.zeros(dim))
        self._targets[key] = module
        self.hook_module(module, partial(self._hook, key))

    def reset_parameters(self) -> None:
        for key in self.gamma:
            nn.init.normal_(self.gamma[key], mean=1.0, std=self.std)
            nn.init.normal_(self.beta[key], mean=0.0, std=self.std)

    def _hook(self, key: str, module: nn.Module, inputs, output):
        if isinstance(output, tuple):  # patch embedding: (tokens, grid)
            return (self._scale(key, output[0]), *output[1:])
        return self._scale(key, output)

    def _scale(self, key: str, x: Tensor) -> Tensor:
        return x * self.gamma[key].to(x.dtype) + self.beta[key].to(x.dtype)

    # ---- merging: fold (gamma, beta) into the layer that produced the output ------------
    def _merge_target(self, key: str) -> tuple[Tensor, Tensor]:
        module = self._targets[key]
        if key == 'patch_embed':
            norm = getattr(module, 'norm', None)
            module = norm if isinstance(norm, nn.LayerNorm) else module.projection
        if module.bias is None:
            raise ValueError(f'cannot merge SSF into {key}: the layer has no bias')
        return module.weight, module.bias

    def merge(self, host: HostSpec) -> None:
        self._saved = {}
        for key in self.gamma:
            weight, bias = self._merge_target(key)
            saved = fold_scale_shift(weight, bias, self.gamma[key], self.beta[key])
            if saved is not None:  # a scale near zero: unmerge restores these exactly
                self._saved[key] = saved

    def unmerge(self, host: HostSpec) -> None:
        saved = getattr(self, '_saved', {})
        for key in self.gamma:
            weight, bias = self._merge_target(key)
            unfold_scale_shift(weight, bias, self.gamma[key], self.beta[key], saved.pop(key, None))
