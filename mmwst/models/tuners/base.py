"""The tuner base class: the lifecycle every parameter-efficient method shares.

A tuner owns only its math. The host backbone (:class:`~mmwst.models.backbones.host.
TunableHostMixin`) owns the lifecycle and calls the tuner at fixed points:

1. ``build(host)`` - once, at construction: create the tuner's parameters, sized from
   the host (:meth:`HostSpec.blocks` gives every block's width, heads and layers), and
   attach to the host's layers through :meth:`hook_module`, :meth:`hook_weight` or
   :meth:`hook_kv`. Parameters created here belong to the tuner and are trainable.
2. ``host_parameters(host)`` - the frozen host's own parameters this method trains
   (BitFit: biases; LN-tune: LayerNorms). Everything else of the host stays frozen.
3. Token hooks, called by the host's forward with a :class:`TokenContext`:
   ``before_blocks``, ``before_block(i)``, ``after_block(i)``, ``after_blocks``.
4. ``merge(host)`` / ``unmerge(host)`` for mergeable methods.

Callbacks registered with the hook helpers must be bound methods (or
``functools.partial`` of them), never closures: ``copy.deepcopy`` of a model then
rebinds them to the copied tuner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..layers.casting import autocast_dtype, product_weights_in_one_copy
from ..layers.tunable import add_kv_fn, add_weight_fn


@dataclass
class BlockSpec:
    """The layers of one transformer block, as tuners see them.

    Attributes:
        index: block index over the whole network (Swin: counted across stages).
        stage: stage index (always 0 for a plain ViT).
        block: the block module.
        dim: token width inside the block.
        num_heads: attention heads.
        norm1: LayerNorm before attention.
        attn: the attention layer whose ``qkv`` sees the normalised tokens (ViT:
            ``MultiheadAttention``; Swin: ``WindowMSA``, after padding, shift and window
            partition).
        attn_branch: module whose output is the attention branch just before the
            residual addition (ViT: ``attn``; Swin: ``ShiftWindowMSA``).
        qkv: the fused query/key/value projection (rows ``[q; k; v]``).
        proj: the attention output projection.
        norm2: LayerNorm before the MLP.
        ffn: the MLP sub-layer, called as ``ffn(norm2(x), identity=x)``; its output
            already includes the residual (and the branch's drop-path).
        mlp: module whose input is the normalised tokens and whose output is the MLP
            branch before drop-path and the residual addition.
        fc1, fc2: the MLP's two Linear layers.
    """

    index: int
    stage: int
    block: nn.Module
    dim: int
    num_heads: int
    norm1: nn.Module
    attn: nn.Module
    attn_branch: nn.Module
    qkv: nn.Linear
    proj: nn.Linear
    norm2: nn.Module
    ffn: nn.Module
    mlp: nn.Module
    fc1: nn.Linear
    fc2: nn.Linear

    def linears(self) -> dict[str, nn.Linear]:
        return {'qkv': self.qkv, 'proj': self.proj, 'fc1': self.fc1, 'fc2': self.fc2}


class HostSpec(Protocol):
    """What a tuner may use of its host backbone - the whole contract, nothing more.

    mmwst's hosts (:class:`~mmwst.models.backbones.TunedVisionTransformer`,
    :class:`~mmwst.models.backbones.TunedSwinTransformer`) provide it; a tuner reads these
    members only and never reaches into the host's other attributes.

    Attributes:
        host_kind: ``'vit'`` (one token grid for all blocks) or ``'swin'`` (stages).
        blocks: every block's layers (:class:`BlockSpec`), in order.
        embed_dims: the token width of a ViT (Swin: of the first stage).
        in_channels: the image channels the patch embedding reads.
        patch_size: ``(ph, pw)`` of the patch embedding.
        patch_resolution: the default patch grid ``(h, w)`` (for the configured
            ``img_size``).
        patch_embed: the patch embedding module (SSF-style tuners hook its output).
        num_extra_tokens: the host's own tokens in front of the patches (the ViT's
            class token: 1; Swin: 0), before any tuner inserts its own.
    """

    host_kind: str
    blocks: list[BlockSpec]
    embed_dims: int
    num_extra_tokens: int

    @property
    def in_channels(self) -> int: ...

    @property
    def patch_size(self) -> tuple[int, int]: ...

    @property
    def patch_resolution(self) -> tuple[int, int]: ...

    @property
    def patch_embed(self) -> nn.Module: ...

    def final_norms(self) -> list[nn.Module]:
        """The norms applied after the last block."""

    def merging_layers(self) -> list[nn.Linear]:
        """The Linear layers between stages (Swin's patch-merging reductions); none on
        the ViT."""

    def host_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of the host's own parameters (no tuner's)."""

    def host_modules(self) -> Iterator[nn.Module]:
        """Every module of the host (no tuner's)."""


class UnsupportedHostError(ValueError):
    """A tuner was put on a kind of host it does not support."""


@dataclass
class TokenContext:
    """What the token hooks of one forward pass share.

    Attributes:
        image: the input image batch ``(B, C, H, W)``.
        patch_resolution: the current patch grid ``(h, w)``.
        num_prefix: number of tokens in front of the patch tokens (class token,
            prompts, meta tokens...). Tuners that insert tokens update it and remove
            their tokens again before the blocks end.
        state: scratch space for tuners during this forward pass (e.g. a branch
            state), keyed by the tuner's own name.
        output: set by at most one tuner to replace the backbone's output.
    """

    image: Tensor
    patch_resolution: tuple[int, int]
    num_prefix: int
    state: dict[str, Any] = field(default_factory=dict)
    output: tuple[Tensor, ...] | None = None


class BaseTuner(BaseModule):
    """Base class of all tuners (see the module docstring for the lifecycle).

    Class attributes:
        mergeable: whether :meth:`merge` folds the method into the host weights.
        identity_at_init: whether a freshly built tuner leaves the host's output
            unchanged (tested for every tuner that claims it).
        alone: for a method that contradicts any other (full fine-tuning, the linear
            probe), the reason, which the host states when it refuses a combination.
        supported_hosts: the host kinds the method runs on; the host refuses others with
            :class:`UnsupportedHostError`, giving ``host_reason``.
        on_board: whether the method has a mini-VTAB row (a ``vit-t_mini-vtab.py``
            config in its folder).
        benchmarked: whether the benchmark times it.
    """

    mergeable: ClassVar[bool] = False
    identity_at_init: ClassVar[bool] = False
    #: The kinds of host (``HostSpec.host_kind``) the method runs on, and why not others.
    supported_hosts: ClassVar[tuple[str, ...]] = ('vit', 'swin', 'sam')
    host_reason: ClassVar[str] = ''
    #: Why the method cannot be combined with any other tuner (None: it can).
    alone: ClassVar[str | None] = None
    #: Whether the method has a row on the mini-VTAB board, i.e. a
    #: ``configs/<method>/vit-t_mini-vtab.py`` (the config tests hold every method
    #: folder to it).
    on_board: ClassVar[bool] = True
    #: Whether ``tools/benchmark.py`` times the method (an entry of
    #: ``tools/benchmarking/methods.py`` uses it; a test holds the list to the flags).
    benchmarked: ClassVar[bool] = True

    def __init__(self, init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self._handles: list[RemovableHandle] = []
        self.merged = False

    # ---- lifecycle -----------------------------------------------------------------
    def build(self, host: HostSpec) -> None:
        """Create parameters and attach to ``host``'s layers (no-op by default)."""

    def host_parameters(self, host: HostSpec) -> Iterable[nn.Parameter]:
        """Host parameters this method trains (none by default)."""
        return ()

    def param_count(self, host: HostSpec) -> int:
        """How many parameters the method trains on ``host`` - its own and the host's it
        trains - computed from the host's widths: the method's count formula, stated once,
        here in the method's file. The shared tuner table checks it against the
        parameters actually built, and the config tests read it."""
        raise NotImplementedError(f'{type(self).__name__} states no count formula')

    def init_weights(self) -> None:
        """Initialise the tuner's own parameters (once; a second call changes nothing)."""
        if getattr(self, '_mmwst_initialised', False):
            return
        self.reset_parameters()
        self._mmwst_initialised = True

    def reset_parameters(self) -> None:
        """Draw the method's initial values (override in methods with parameters)."""

    def detach(self) -> None:
        """Remove every hook this tuner placed on the host."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ---- merging -------------------------------------------------------------------
    def merge(self, host: HostSpec) -> None:
        """Fold the method into the host's weights (exact; mergeable methods only)."""
        raise NotImplementedError(f'{type(self).__name__} cannot be merged into the weights')

    def unmerge(self, host: HostSpec) -> None:
        """Undo :meth:`merge`."""
        raise NotImplementedError(f'{type(self).__name__} cannot be merged into the weights')

    # ---- token hooks (identity by default) -----------------------------------------
    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        return x

    def before_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        return x

    def after_block(self, index: int, x: Tensor, ctx: TokenContext) -> Tensor:
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        return x

    # ---- helpers to attach to host layers ------------------------------------------
    def hook_module(self, module: nn.Module, fn: Callable) -> None:
        """Run ``fn(module, inputs, output) -> new output`` after ``module``.

        ``fn`` is skipped while the tuner is merged.
        """
        self._handles.append(module.register_forward_hook(_SkipWhenMerged(self, fn)))

    def hook_weight(self, linear: nn.Linear, fn: Callable) -> None:
        """Let ``fn(weight, bias) -> (weight, bias)`` rewrite ``linear``'s parameters."""
        self._handles.append(add_weight_fn(linear, _SkipWhenMerged(self, fn, weights=True)))

    def hook_kv(self, attn: nn.Module, fn: Callable) -> None:
        """Let ``fn(x, k, v) -> (k, v)`` change an attention layer's keys and values."""
        self._handles.append(add_kv_fn(attn, fn))


class _SkipWhenMerged:
    """Forward-hook / weight-fn wrapper that does nothing once its tuner is merged.

    A small class (not a closure) so that ``copy.deepcopy`` rebinds it to the copy.
    """

    def __init__(self, tuner: BaseTuner, fn: Callable, weights: bool = False) -> None:
        self.tuner = tuner
        self.fn = fn
        self.weights = weights

    def __call__(self, *args):
        if self.tuner.merged:
            return args if self.weights else None
        return self.fn(*args)


class OneCopyCasts:
    """For a tuner whose modules can take their weights as the caller cast them (a
    ``product_weights()`` method and a ``weights`` argument to ``forward``): under
    autocast, the weights of all of :meth:`cast_layers` are cast in one copy before the
    blocks (:func:`~mmwst.models.layers.casting.product_weights_in_one_copy`: one cast
    forward, one back), and :meth:`cast_weights` hands each module its own, where
    autocast would cast each weight at its product and its gradient back; the same
    values and gradients. List it before :class:`BaseTuner`; a tuner with its own
    ``before_blocks`` / ``after_blocks`` calls these through ``super()``."""

    #: this forward pass's cast weights, by module (none outside a pass)
    _cast: Mapping = MappingProxyType({})

    def cast_layers(self) -> list[nn.Module]:
        """The modules whose weights are cast together."""
        raise NotImplementedError

    def cast_weights(self, layer: nn.Module) -> list[Tensor] | None:
        """``layer``'s weights as cast for this pass, or None (its own)."""
        return self._cast.get(layer)

    def before_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        low = autocast_dtype(x.device.type)
        self._cast = product_weights_in_one_copy(self.cast_layers(), low)
        return x

    def after_blocks(self, x: Tensor, ctx: TokenContext) -> Tensor:
        self._cast = MappingProxyType({})
        return x
