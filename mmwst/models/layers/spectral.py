"""Learnable spectral filters on patch tokens (FreqFit).

FreqFit (Ly and Nguyen, arXiv:2411.19297) inserts a frequency-domain filter
between the blocks of a frozen Vision Transformer: the patch tokens are moved to
the 2-D Fourier domain, multiplied by a learned filter, brought back, scaled and
shifted per channel, and added to the input as a residual
(:class:`SpectralFilter2d`). For MoCo v3, MAE and CLIP hosts and with prompts,
the released code filters along the 1-D token sequence instead
(:class:`SpectralFilter1d`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .scale_shift import UnitMoments, channel_affine

__all__ = ['SpectralFilter1d', 'SpectralFilter2d', 'spectral_product']

_FILTER_TYPES = ('complex', 'real')


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'{name} must be a positive int, got {value!r} ({type(value).__name__})')
    return value


class _SpectralProduct(torch.autograd.Function):
    """``irfftn(rfftn(x) * K)`` over the last dimensions of ``x`` (:func:`spectral_product`),
    with the backward pass written out.

    With ``G`` the output's gradient and ``R = rfftn(G)``, the input's gradient is the
    same filter with the conjugate kernel, ``irfftn(R * conj(K))``: autograd's route
    takes the adjoint of ``irfftn`` (``rfftn``, with every bin between the first and the
    last of the halved dimension doubled, as each also stands for its mirror image) and
    then the adjoint of ``rfftn`` (a zero-padded inverse complex transform of the full
    grid, of which the real part is kept), and the doubling and the padding cancel,
    which leaves one real inverse transform instead of a padded complex one. The
    kernel's gradient is ``sum_batch(R * conj(rfftn(x)))`` with the doubling.
    """

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, size: tuple[int, ...]) -> Tensor:
        dims = tuple(range(-len(size), 0))
        spectrum = torch.fft.rfftn(x, dim=dims, norm='ortho')
        out = torch.fft.irfftn(spectrum * kernel, s=size, dim=dims, norm='ortho')
        ctx.save_for_backward(spectrum if ctx.needs_input_grad[1] else None, kernel)
        ctx.size = size
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        spectrum, kernel = ctx.saved_tensors
        size = ctx.size
        dims = tuple(range(-len(size), 0))
        freq = torch.fft.rfftn(grad, dim=dims, norm='ortho')
        grad_x = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.fft.irfftn(freq * kernel.conj(), s=size, dim=dims, norm='ortho')
        if ctx.needs_input_grad[1]:
            grad_kernel = _sum_to_kernel(freq * spectrum.conj(), kernel)
            mirrored = size[-1] - freq.shape[-1]  # the bins 1 ... that stand for two
            if mirrored > 0:
                grad_kernel.narrow(-1, 1, mirrored).mul_(2)
            if not kernel.is_complex():
                grad_kernel = grad_kernel.real
        return grad_x, grad_kernel, None


def _sum_to_kernel(product: Tensor, kernel: Tensor) -> Tensor:
    """``product`` summed over the dimensions ``kernel`` broadcast along, laid out in
    memory as ``kernel`` is. The kernel is usually a permuted view of its parameter
    (channels first for the transform, channels last as stored); a gradient in the
    product's layout would be copied into the parameter's on its way back, one copy per
    filter. A reduction writes its result contiguous in the order of the dimensions it
    is given, so the product is summed as seen in the kernel's memory order (a view)
    and the result viewed back: no copy."""
    lead = product.dim() - kernel.dim()
    # the kernel's dimensions from the outermost in memory to the innermost
    order = sorted(range(kernel.dim()), key=lambda i: -kernel.stride(i))
    dims = [*range(lead)]
    dims += [
        lead + j
        for j, i in enumerate(order)
        if kernel.shape[i] == 1 and product.shape[lead + i] != 1
    ]
    if len(dims) == 0:
        return product
    seen = product.permute(*range(lead), *(lead + i for i in order))
    summed = seen.sum(dims, keepdim=True).reshape([kernel.shape[i] for i in order])
    return summed.permute(*sorted(range(kernel.dim()), key=order.__getitem__))


def spectral_product(x: Tensor, kernel: Tensor, size: Sequence[int]) -> Tensor:
    """``irfftn(rfftn(x) * kernel, s=size)`` over the last ``len(size)`` dimensions of a
    real ``x`` (``norm='ortho'``): a filter in the Fourier domain.

    ``kernel`` (complex or real) broadcasts against the spectrum ``(..., *size[:-1],
    size[-1] // 2 + 1)``, e.g. ``(D, h, w // 2 + 1)`` for ``x`` ``(B, D, h, w)``. The same
    values and gradients as the two transforms under autograd, with fewer operators in
    the backward pass (see :class:`_SpectralProduct`): one real inverse transform for
    the input's gradient where autograd runs a zero-padded complex one and copies its
    real part out.
    """
    return _SpectralProduct.apply(x, kernel, tuple(int(n) for n in size))


class SpectralFilter2d(nn.Module):
    """Residual learnable filter in the 2-D Fourier domain of patch tokens.

    For patch tokens ``P`` of shape ``(B, h, w, D)`` the layer computes::

        F   = rfft2(P, dim=(1, 2), norm='ortho')          # (B, h, w // 2 + 1, D), complex
        P'  = irfft2(F * K, s=(h, w), dim=(1, 2), norm='ortho')
        out = P + gamma * P' + beta

    where ``K`` is a learned filter of shape ``(h0, w0 // 2 + 1, D)`` and
    ``gamma``, ``beta`` are learned per-channel scale and shift of shape ``(D,)``.
    ``K`` is complex (``filter_type='complex'``, stored as a real parameter of
    shape ``(h0, w0 // 2 + 1, D, 2)`` holding real and imaginary parts) or real
    (``filter_type='real'``, shape ``(h0, w0 // 2 + 1, D)``). Initialisation
    (:meth:`init_weights`): ``K ~ N(0, 0.02^2)`` (both parts), ``gamma ~ N(1, 0.02^2)``,
    ``beta ~ N(0, 0.02^2)``.

    The FFTs run in float32 (float64 for float64 inputs), whatever the input
    dtype; the result is cast back to the input dtype, so bfloat16 and float16
    inputs work on any device.

    Grid sizes other than ``grid_size``: the filter is resized over the frequency
    grid from ``(h0, w0 // 2 + 1)`` to ``(h, w // 2 + 1)`` by bilinear interpolation
    with ``align_corners=True``, real and imaginary parts separately. The choice
    follows from what the bins mean: along the halved (last) axis the
    ``w // 2 + 1`` rfft bins sample the same continuous frequency range ``[0, pi]``
    for every even ``w``, so with aligned corners the DC and Nyquist bins map to
    each other and the bins in between are sampled at matching frequencies.
    Along the full (first) axis the bins cover the whole circle, ``[0, 2 pi)``
    with negative frequencies in the second half, and a plain resize of that
    layout is only an approximation (bin ``k`` of ``h`` sits at ``2 pi k / h``,
    which the endpoint-aligned resize matches only approximately). The resize is
    differentiable, so the stored filter is trained through it; it is recomputed
    at every call, and skipped when ``(h, w // 2 + 1)`` equals the stored grid
    ``(h0, w0 // 2 + 1)`` (so widths 14 and 15 share the same 8 bins unchanged).

    Args:
        dim (int): Token channels ``D``.
        grid_size (tuple[int, int]): Patch grid ``(h0, w0)`` the filter is built for,
            e.g. ``(14, 14)`` for a ViT-B/16 at 224x224.
        filter_type (str): ``'complex'`` (FreqFit default) or ``'real'``.
            Defaults to ``'complex'``.

    Shape:
        - Input: ``(B, h, w, D)``.
        - Output: ``(B, h, w, D)``, same dtype as the input.

    Examples:
        >>> import torch
        >>> from mmwst.models.layers import SpectralFilter2d
        >>> layer = SpectralFilter2d(768, (14, 14))
        >>> sum(p.numel() for p in layer.parameters())  # 14 * 8 * 768 * 2 + 2 * 768
        173568
        >>> layer(torch.randn(2, 14, 14, 768)).shape
        torch.Size([2, 14, 14, 768])
        >>> layer(torch.randn(2, 16, 20, 768)).shape  # filter resized to (16, 11)
        torch.Size([2, 16, 20, 768])
    """

    def __init__(self, dim: int, grid_size: tuple[int, int], filter_type: str = 'complex') -> None:
        super().__init__()
        self.dim = _check_positive_int('dim', dim)
        if (
            isinstance(grid_size, (str, bytes))
            or not isinstance(grid_size, Sequence)
            or len(grid_size) != 2
        ):
            raise ValueError(f'grid_size must be a pair (h, w) of positive ints, got {grid_size!r}')
        height = _check_positive_int('grid_size[0]', grid_size[0])
        width = _check_positive_int('grid_size[1]', grid_size[1])
        self.grid_size = (height, width)
        if filter_type not in _FILTER_TYPES:
            raise ValueError(f'filter_type must be one of {_FILTER_TYPES}, got {filter_type!r}')
        self.filter_type = filter_type

        # Filter over the rfft2 frequency grid: (h0, w0 // 2 + 1, D[, 2]).
        shape = (height, width // 2 + 1, dim) + ((2,) if filter_type == 'complex' else ())
        self.weight = nn.Parameter(torch.empty(shape))
        self.gamma = nn.Parameter(torch.empty(dim))
        self.beta = nn.Parameter(torch.empty(dim))
        self.moments = UnitMoments()  # the scale and shift as one batch_norm
        self.moments.reserve(dim)
        self.init_weights()

    def init_weights(self) -> None:
        """Reset ``K ~ N(0, 0.02^2)``, ``gamma ~ N(1, 0.02^2)``, ``beta ~ N(0, 0.02^2)``."""
        nn.init.normal_(self.weight, mean=0.0, std=0.02)
        nn.init.normal_(self.gamma, mean=1.0, std=0.02)
        nn.init.normal_(self.beta, mean=0.0, std=0.02)

    def frequency_filter(
        self, grid_size: tuple[int, int] | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Return the filter ``K`` for a patch grid, resized if needed.

        Args:
            grid_size (tuple[int, int], optional): Patch grid ``(h, w)``. Defaults
                to ``None``, meaning the grid the layer was built for.
            dtype (torch.dtype, optional): Real dtype to cast the stored filter to
                before resizing, ``torch.float32`` or ``torch.float64``. Defaults
                to ``None``, keeping the parameter's dtype.

        Returns:
            Tensor: Shape ``(h, w // 2 + 1, D)``; complex for ``filter_type='complex'``
            (``torch.complex64`` for float32), otherwise real.
        """
        height, width = self.grid_size if grid_size is None else grid_size
        weight = self.weight if dtype is None else self.weight.to(dtype)
        target = (height, width // 2 + 1)
        if tuple(weight.shape[:2]) != target:
            parts = weight.shape[3:]  # (2, ) for complex, () for real
            # Channels first for F.interpolate, real and imaginary parts as channels:
            # (h0, w0 // 2 + 1, D[, 2]) -> (D[, 2], h0, w0 // 2 + 1)
            #                           -> (1, D * parts, h0, w0 // 2 + 1)
            grid = weight.permute(*range(2, weight.dim()), 0, 1)
            grid = grid.reshape(1, -1, *weight.shape[:2])
            # (1, D * parts, h0, w0 // 2 + 1) -> (1, D * parts, h, w // 2 + 1)
            grid = F.interpolate(grid, size=target, mode='bilinear', align_corners=True)
            # (1, D * parts, h, w // 2 + 1) -> (D[, 2], h, w // 2 + 1)
            #                               -> (h, w // 2 + 1, D[, 2])
            grid = grid.reshape(self.dim, *parts, *target)
            weight = grid.permute(grid.dim() - 2, grid.dim() - 1, *range(grid.dim() - 2))
        if self.filter_type == 'complex':
            # (h, w // 2 + 1, D, 2) -> (h, w // 2 + 1, D), complex
            weight = torch.view_as_complex(weight.contiguous())
        return weight

    def forward(self, x: Tensor) -> Tensor:
        """Filter patch tokens ``x`` of shape ``(B, h, w, D)``; returns the same shape."""
        return (x + self.update(x)).to(x.dtype)

    def update(self, x: Tensor) -> Tensor:
        """What :meth:`forward` adds to the patch tokens ``x`` (B, h, w, D): ``gamma * P'
        + beta``, ``(B, h, w, D)`` in float32 (float64 for a float64 ``x``), a view of a
        channels-first map."""
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise ValueError(
                f'SpectralFilter2d expects patch tokens of shape (B, h, w, D) '
                f'with D={self.dim}, got shape {tuple(x.shape)}'
            )
        if not x.is_floating_point():
            raise TypeError(f'SpectralFilter2d expects a floating point input, got {x.dtype}')
        height, width = x.shape[1:3]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        # the transform runs over the last two dimensions of a channels-first view, the
        # same values as over dims (1, 2) of the tokens: there the CPU's FFT returns
        # strides other than those torch.compile's shape propagation predicts (torch
        # 2.11), and the compiled graph fails its stride check
        # (h, w // 2 + 1, D) -> (D, h, w // 2 + 1), broadcast over the batch
        kernel = self.frequency_filter((height, width), dtype=dtype).permute(2, 0, 1)
        # (B, h, w, D) -> (B, D, h, w), filtered
        filtered = spectral_product(x.to(dtype).permute(0, 3, 1, 2), kernel, (height, width))
        # seen as (B, h, w, D): gamma * P' + beta, one batch_norm over its channels
        return channel_affine(filtered.permute(0, 2, 3, 1), self.gamma, self.beta, self.moments)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Keep a filter trained on another grid: it is resized at run time, exactly as
        it was for inputs of other sizes during training (never dropped)."""
        incoming = state_dict.get(prefix + 'weight')
        if (
            isinstance(incoming, Tensor)
            and incoming.dim() == self.weight.dim()
            and tuple(incoming.shape[2:]) == tuple(self.weight.shape[2:])
            and tuple(incoming.shape[:2]) != tuple(self.weight.shape[:2])
        ):
            with torch.no_grad():  # same Parameter object, the trained filter's shape
                self.weight.data = self.weight.new_empty(incoming.shape)
            self.grid_size = (int(incoming.shape[0]), 2 * (int(incoming.shape[1]) - 1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, grid_size={self.grid_size}, filter_type={self.filter_type!r}'


class SpectralFilter1d(nn.Module):
    """Residual learnable filter in the 1-D Fourier domain of a token sequence.

    For tokens ``X`` of shape ``(B, N, D)`` (in FreqFit: every token after the class
    token - prompts and patches in sequence order) the layer computes::

        F   = rfft(X, dim=1, norm='ortho')                 # (B, N // 2 + 1, D), complex
        out = X + irfft(F * K, n=N, dim=1, norm='ortho')

    with a learned filter ``K`` of shape ``(N0 // 2 + 1, D)``, complex
    (``filter_type='complex'``, stored as ``(N0 // 2 + 1, D, 2)``) or real. There is
    no scale and shift, as in the released code's 1-D filter. Init: ``K ~ N(0,
    0.02^2)`` (both parts). The FFTs run in float32 (float64 for float64 inputs); the
    result is cast back to the input dtype.

    Other lengths: the filter is resized over its ``N0 // 2 + 1`` bins to
    ``N // 2 + 1`` by linear interpolation with aligned ends (the DC and the last
    bin map onto each other; real and imaginary parts separately), differentiably,
    and loaded filters of another length are kept, as in :class:`SpectralFilter2d`.

    Args:
        dim (int): Token channels ``D``.
        length (int): Sequence length ``N0`` the filter is built for, e.g. 196 (the
            14 x 14 patches of ViT-B/16 at 224), or 206 with 10 prompts.
        filter_type (str): ``'complex'`` (the released default) or ``'real'``.
            Defaults to ``'complex'``.

    Examples:
        >>> import torch
        >>> from mmwst.models.layers import SpectralFilter1d
        >>> layer = SpectralFilter1d(768, 196)
        >>> sum(p.numel() for p in layer.parameters())  # 99 bins x 768 x 2
        152064
        >>> layer(torch.randn(2, 196, 768)).shape
        torch.Size([2, 196, 768])
    """

    def __init__(self, dim: int, length: int, filter_type: str = 'complex') -> None:
        super().__init__()
        self.dim = _check_positive_int('dim', dim)
        self.length = _check_positive_int('length', length)
        if filter_type not in _FILTER_TYPES:
            raise ValueError(f'filter_type must be one of {_FILTER_TYPES}, got {filter_type!r}')
        self.filter_type = filter_type
        shape = (length // 2 + 1, dim) + ((2,) if filter_type == 'complex' else ())
        self.weight = nn.Parameter(torch.empty(shape))
        self.init_weights()

    def init_weights(self) -> None:
        """Reset ``K ~ N(0, 0.02^2)``."""
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def frequency_filter(
        self, length: int | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """The filter ``K`` for a sequence of ``length`` tokens, ``(length // 2 + 1, D)``,
        resized if needed; complex for ``filter_type='complex'``."""
        bins = (self.length if length is None else length) // 2 + 1
        weight = self.weight if dtype is None else self.weight.to(dtype)
        if weight.shape[0] != bins:
            parts = weight.shape[2:]  # (2, ) for complex, () for real
            # (bins0, D[, 2]) -> (1, D * parts, bins0) -> (1, D * parts, bins)
            line = weight.reshape(weight.shape[0], -1).t().unsqueeze(0)
            line = F.interpolate(line, size=bins, mode='linear', align_corners=True)
            # (1, D * parts, bins) -> (bins, D[, 2])
            weight = line[0].t().reshape(bins, self.dim, *parts)
        if self.filter_type == 'complex':
            weight = torch.view_as_complex(weight.contiguous())
        return weight

    def forward(self, x: Tensor) -> Tensor:
        """Filter tokens ``x`` of shape ``(B, N, D)``; returns the same shape."""
        return (x + self.update(x)).to(x.dtype)

    def update(self, x: Tensor) -> Tensor:
        """What :meth:`forward` adds to the tokens ``x`` (B, N, D): the filtered
        sequence, ``(B, N, D)`` in float32 (float64 for a float64 ``x``), a view of a
        channels-first one."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(
                f'SpectralFilter1d expects tokens of shape (B, N, D) with D={self.dim}, '
                f'got shape {tuple(x.shape)}'
            )
        if not x.is_floating_point():
            raise TypeError(f'SpectralFilter1d expects a floating point input, got {x.dtype}')
        length = x.shape[1]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        kernel = self.frequency_filter(length, dtype=dtype).t()  # (D, N // 2 + 1)
        # over the last dimension of a channels-first view (as SpectralFilter2d does):
        # (B, N, D) -> (B, D, N), filtered, seen as (B, N, D)
        filtered = spectral_product(x.to(dtype).transpose(1, 2), kernel, (length,))
        return filtered.transpose(1, 2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Keep a filter trained for another length (resized at run time, never
        dropped)."""
        incoming = state_dict.get(prefix + 'weight')
        if (
            isinstance(incoming, Tensor)
            and incoming.dim() == self.weight.dim()
            and tuple(incoming.shape[1:]) == tuple(self.weight.shape[1:])
            and incoming.shape[0] != self.weight.shape[0]
        ):
            with torch.no_grad():
                self.weight.data = self.weight.new_empty(incoming.shape)
            self.length = 2 * (int(incoming.shape[0]) - 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, length={self.length}, filter_type={self.filter_type!r}'
