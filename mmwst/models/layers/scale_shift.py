"""Folding a per-channel scale and shift ``y = gamma * o(x) + beta`` into the layer ``o``
that produced ``o(x)`` (SSF; RLRR's SSF part), and undoing it safely.

``o`` has a weight whose first dimension is the output channel (Linear, conv, LayerNorm)
and a bias. Folding multiplies the weight's rows and the bias by ``gamma`` and adds
``beta``. Undoing it divides by ``gamma``, which loses the weight where ``gamma`` is near
zero; there the original weight and bias are kept at fold time and restored exactly
(like peft's safe merge, without the refusal: the fold itself is always exact).

While training, :func:`channel_affine` applies a pair as ``batch_norm`` in evaluation mode
with zero mean and unit variance: the same ``x * gamma + beta``, in one operator forward
and one backward (which returns the input's, the scale's and the shift's gradients
together), where the plain expression takes two forward and four backward.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: |gamma| below this: keep the originals rather than divide by it later.
SAFE_SCALE = 1e-3
#: Input dtypes that batch_norm takes with float32 parameters (its mixed-precision path).
_REDUCED = (torch.float16, torch.bfloat16)


class UnitMoments(nn.Module):
    """Zero means and unit variances, the running statistics with which ``batch_norm``
    in evaluation mode is a plain per-channel affine map (:func:`channel_affine`).

    Non-persistent buffers (checkpoints do not change), sized to the widest channel
    count reserved and sliced per call, so they follow the module's device.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer('zeros', torch.zeros(0), persistent=False)
        self.register_buffer('ones', torch.ones(0), persistent=False)

    def reserve(self, channels: int) -> None:
        """Make room for ``channels`` channels."""
        if channels > self.zeros.numel():
            self.zeros = self.zeros.new_zeros(channels)
            self.ones = self.ones.new_ones(channels)

    def get(self, channels: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(zeros, ones)`` of ``channels`` channels in ``dtype``."""
        assert channels <= self.zeros.numel(), 'reserve() the width first'
        return self.zeros[:channels].to(dtype), self.ones[:channels].to(dtype)


def param_dtype(x: Tensor, param: Tensor | None = None) -> torch.dtype:
    """The dtype in which ``batch_norm`` takes its parameters (and statistics) for the
    input ``x``: ``x``'s own, or float32 for a half-precision ``x`` whose parameter
    ``param`` is not in that precision too (batch_norm's mixed-precision path)."""
    if x.dtype in _REDUCED and (param is None or param.dtype != x.dtype):
        return torch.float32
    return x.dtype


def channel_affine(x: Tensor, weight: Tensor, bias: Tensor, moments: UnitMoments) -> Tensor:
    """``x * weight + bias`` over the last dimension of ``x`` (``weight``, ``bias``: (C,)).

    Computed as ``batch_norm`` in evaluation mode with running mean 0, variance 1 and
    ``eps`` 0, i.e. ``(x - 0) / sqrt(1 + 0) * weight + bias``, the same values: one
    operator forward, and one backward that returns ``grad * weight``, ``sum(grad * x)``
    and ``sum(grad)`` over all but the channels together (a product and a sum forward
    and a product, a product with a sum and a sum backward otherwise). A half-precision
    ``x`` meets float32 parameters there and keeps its dtype.
    """
    channels = x.shape[-1]
    dtype = param_dtype(x, weight)
    mean, var = moments.get(channels, dtype)
    weight, bias = weight.to(dtype), bias.to(dtype)
    if x.is_contiguous() or x.dim() < 2:
        # (..., C) -> (N, C): the channels are batch_norm's dim 1
        out = torch.batch_norm(
            x.reshape(-1, channels), weight, bias, mean, var, False, 0.0, 0.0, False
        )
        return out.view(x.shape)
    # a channels-first map seen channels-last, e.g. the patch embedding's (B, HW, C) view
    # of its (B, C, HW) output: (B, HW, C) -> (B, C, HW), a view
    out = torch.batch_norm(x.movedim(-1, 1), weight, bias, mean, var, False, 0.0, 0.0, False)
    return out.movedim(1, -1)


def fold_scale_shift(
    weight: Tensor, bias: Tensor, gamma: Tensor, beta: Tensor
) -> tuple[Tensor, Tensor] | None:
    """Fold ``gamma``, ``beta`` (C,) into ``weight`` (C, ...) and ``bias`` (C,) in place.

    Returns:
        The original ``(weight, bias)`` when some ``|gamma|`` is below :data:`SAFE_SCALE`
        (pass them to :func:`unfold_scale_shift`), else None.
    """
    gamma, beta = gamma.to(weight.dtype), beta.to(bias.dtype)
    saved = None
    if bool((gamma.abs() < SAFE_SCALE).any()):
        saved = (weight.detach().clone(), bias.detach().clone())
    with torch.no_grad():
        # (C, ) -> (C, 1, ...) to scale the output channels of a Linear, conv or norm
        weight.mul_(gamma.view(-1, *([1] * (weight.dim() - 1))))
        bias.mul_(gamma).add_(beta)
    return saved


def unfold_scale_shift(
    weight: Tensor,
    bias: Tensor,
    gamma: Tensor,
    beta: Tensor,
    saved: tuple[Tensor, Tensor] | None = None,
) -> None:
    """Undo :func:`fold_scale_shift` in place (restoring ``saved`` when given)."""
    with torch.no_grad():
        if saved is not None:
            weight.copy_(saved[0])
            bias.copy_(saved[1])
            return
        gamma, beta = gamma.to(weight.dtype), beta.to(bias.dtype)
        bias.sub_(beta).div_(gamma)
        weight.div_(gamma.view(-1, *([1] * (weight.dim() - 1))))


class ScaleShiftPairs(nn.Module):
    """Scale-and-shift pairs after chosen layers: ``y = gamma * o(x) + beta`` (SSF; the
    SSF part of RLRR), one ``(gamma, beta)`` of the layer's output width per target.

    The owner (a tuner) calls :meth:`add` for each target while it builds and places
    :meth:`output_hook` on the target as a forward hook (the patch embedding's
    ``(tokens, grid)`` output is handled). :meth:`merge` folds every pair into the weight
    and bias of the layer that produced its input (the patch embedding: its norm when it
    has a LayerNorm, else its projection) and :meth:`unmerge` undoes it, restoring the
    originals exactly where a scale is near zero.

    Examples:
        >>> import torch
        >>> pairs = ScaleShiftPairs()
        >>> linear = nn.Linear(4, 3)
        >>> pairs.add('fc', linear, 3)
        >>> pairs.reset_parameters(std=0.5)
        >>> x = torch.randn(2, 4)
        >>> y = pairs.scale_shift('fc', linear(x))
        >>> with torch.no_grad():
        ...     pairs.merge()
        >>> torch.allclose(linear(x), y, atol=1e-6)
        True
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.ParameterDict()
        self.beta = nn.ParameterDict()
        self._targets: dict[str, nn.Module] = {}
        self._saved: dict[str, tuple[Tensor, Tensor]] = {}
        self.moments = UnitMoments()

    def add(self, key: str, module: nn.Module, dim: int) -> None:
        """A pair for the output of ``module`` (``dim`` channels)."""
        self.gamma[key] = nn.Parameter(torch.ones(dim))
        self.beta[key] = nn.Parameter(torch.zeros(dim))
        self._targets[key] = module
        self.moments.reserve(dim)

    def reset_parameters(self, std: float) -> None:
        """``gamma ~ N(1, std^2)``, ``beta ~ N(0, std^2)``."""
        for key in self.gamma:
            nn.init.normal_(self.gamma[key], mean=1.0, std=std)
            nn.init.normal_(self.beta[key], mean=0.0, std=std)

    def scale_shift(self, key: str, x: Tensor) -> Tensor:
        """``gamma * x + beta`` over the last dimension (:func:`channel_affine`)."""
        return channel_affine(x, self.gamma[key], self.beta[key], self.moments)

    def output_hook(self, key: str, module: nn.Module, inputs, output):
        """Forward hook: the pair applied to the module's output."""
        if isinstance(output, tuple):  # patch embedding: (tokens, grid)
            return (self.scale_shift(key, output[0]), *output[1:])
        return self.scale_shift(key, output)

    def _merge_module(self, key: str) -> nn.Module:
        module = self._targets[key]
        if key == 'patch_embed':
            norm = getattr(module, 'norm', None)
            module = norm if isinstance(norm, nn.LayerNorm) else module.projection
        if getattr(module, 'weight', None) is None:
            raise ValueError(
                f'cannot merge the scale and shift of {key} into {type(module).__name__}: the '
                'layer has no affine weight to absorb them; keep the model unmerged'
            )
        return module

    def merge(self) -> None:
        """Fold every pair into its layer (in place). A layer without a bias (CLIP's
        patch embedding) gets one for the shift, removed again by :meth:`unmerge`."""
        self._saved = {}
        self._created_bias = []
        for key in self.gamma:
            module = self._merge_module(key)
            if module.bias is None:
                weight = module.weight
                module.bias = nn.Parameter(weight.new_zeros(weight.shape[0]), requires_grad=False)
                self._created_bias.append(key)
            saved = fold_scale_shift(module.weight, module.bias, self.gamma[key], self.beta[key])
            if saved is not None:  # a scale near zero: unmerge restores these exactly
                self._saved[key] = saved

    def unmerge(self) -> None:
        """Undo :meth:`merge` (in place)."""
        created = getattr(self, '_created_bias', [])
        for key in reversed(list(self.gamma)):
            module = self._merge_module(key)
            saved = self._saved.pop(key, None)
            unfold_scale_shift(module.weight, module.bias, self.gamma[key], self.beta[key], saved)
            if key in created:
                module.bias = None
        self._created_bias = []
