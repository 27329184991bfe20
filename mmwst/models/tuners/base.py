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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..layers.tunable import add_kv_fn, add_weight_fn

if TYPE_CHECKING:
    from ..backbones.host import HostSpec


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
    """

    mergeable: ClassVar[bool] = False
    identity_at_init: ClassVar[bool] = False
    #: Why the method cannot be combined with any other tuner (None: it can).
    alone: ClassVar[str | None] = None

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
    def hook_module(self, module: nn.Module, fn: Callable, with_input: bool = True) -> None:
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
