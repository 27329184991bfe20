"""Baselines that train a subset of the host's own parameters, or nothing.

Linear probing, full fine-tuning, BitFit and LN-tune add no parameters: they choose
which host parameters train, by module type (never by name).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from torch import Tensor, nn

from ...registry import MODELS
from ..layers.casting import autocast_dtype, cast_groups_in_one_copy
from ..layers.tunable import add_weight_fn
from .base import BaseTuner, HostSpec, TokenContext

#: Modules whose ``bias`` BitFit trains and whose affine parameters LN-tune trains.
_BIAS_MODULES = (nn.Linear, nn.Conv2d, nn.LayerNorm)


@MODELS.register_module()
class LinearProbe(BaseTuner):
    """Linear probing: the backbone stays entirely frozen; only the head trains.

    Trainable parameters in the backbone: 0.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.LinearProbe')])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        0
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True
    mergeable = True
    alone = 'the linear probe trains no backbone parameter at all'

    def param_count(self, host: HostSpec) -> int:
        """Nothing of the backbone: 0."""
        return 0

    def merge(self, host: HostSpec) -> None:
        pass

    unmerge = merge


@MODELS.register_module()
class FullFineTune(BaseTuner):
    """Full fine-tuning: every host parameter trains (the usual upper-cost baseline).

    Trainable parameters in the backbone: all of them (ViT-B/16: 85,798,656).

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.FullFineTune')])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)  # every host parameter
        23904
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True
    mergeable = True
    alone = 'full fine-tuning already trains every backbone parameter'

    def param_count(self, host: HostSpec) -> int:
        """Every host parameter."""
        return sum(p.numel() for p in self.host_parameters(host))

    def host_parameters(self, host: HostSpec) -> Iterator[nn.Parameter]:
        for _, param in host.host_named_parameters():
            yield param

    def merge(self, host: HostSpec) -> None:
        pass

    unmerge = merge


@MODELS.register_module()
class BitFit(BaseTuner):
    """BitFit (Ben Zaken et al., ACL 2022): train every bias term of the host.

    Biases of all Linear, Conv2d and LayerNorm layers. ViT-B/16: per block
    qkv 2304 + proj 768 + fc1 3072 + fc2 768 + two LayerNorms 2 * 768 = 8,448;
    12 blocks + patch embedding 768 + final norm 768 = **102,912**.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.BitFit')])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        640
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True
    mergeable = True

    def param_count(self, host: HostSpec) -> int:
        """Every bias of the host (Linear, conv and norm layers)."""
        return sum(p.numel() for p in self.host_parameters(host))

    def host_parameters(self, host: HostSpec) -> Iterator[nn.Parameter]:
        for module in _of_type(host, _BIAS_MODULES):
            if module.bias is not None:
                yield module.bias

    def build(self, host: HostSpec) -> None:
        # under autocast (a frozen host held in bf16 runs under it) the Linears' trained
        # float32 biases are cast in one copy before the blocks, where autocast would cast
        # each at its product and its gradient back: one kernel each way instead of one
        # per Linear, with the same values - so also once merged, when the trained biases
        # are simply the host's (the hook is not skipped then)
        self._linears = [m for m in _of_type(host, (nn.Linear,)) if m.bias is not None]
        self._cast: dict[nn.Module, list[Tensor]] = {}
        for linear in self._linears:
            self._handles.append(add_weight_fn(linear, partial(self._cast_bias, linear)))

    def _cast_bias(self, linear: nn.Linear, weight: Tensor, bias: Tensor | None):
        cast = self._cast.get(linear)
        if cast is None or bias is not linear.bias:  # no copy, or another tuner's bias
            return weight, bias
        return weight, cast[0]

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        biases = {m: [m.bias] for m in self._linears}
        self._cast = cast_groups_in_one_copy(biases, autocast_dtype(x.device.type))
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._cast = {}
        return x

    def merge(self, host: HostSpec) -> None:
        pass  # the trained biases are the host's own

    unmerge = merge


@MODELS.register_module()
class LNTune(BaseTuner):
    """LN-tune: train the affine parameters of every LayerNorm of the host.

    ViT-B/16: 2 LayerNorms x 2 x 768 per block x 12 + final norm 1,536 = **38,400**.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.LNTune')])
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)  # 5 norms x 2 x 32
        320
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    identity_at_init = True
    mergeable = True

    def param_count(self, host: HostSpec) -> int:
        """Weight and bias of every LayerNorm: 2 x width per norm."""
        return sum(p.numel() for p in self.host_parameters(host))

    def host_parameters(self, host: HostSpec) -> Iterator[nn.Parameter]:
        for module in _of_type(host, (nn.LayerNorm,)):
            yield from (p for p in (module.weight, module.bias) if p is not None)

    def merge(self, host: HostSpec) -> None:
        pass

    unmerge = merge


def _of_type(host, types: tuple[type, ...]) -> Iterator[nn.Module]:
    return (m for m in host.host_modules() if isinstance(m, types))
