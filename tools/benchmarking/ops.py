"""What a GPU would launch, counted on any machine: operators per step and graph breaks.

On a GPU, a step made of many small operators is bound by launching them, not by
arithmetic: each launch costs microseconds whatever its size, so a method whose step
runs thousands of tiny kernels around the frozen ViT's big ones can cost more than full
fine-tuning while computing far less. Two counts show this without a GPU:

- :func:`count_ops`: the ATen operators a callable runs (forward, backward and optimizer
  alike), as the dispatcher sees them below autograd - each one a kernel launch on a
  GPU. Views and pure metadata operations (``view``, ``permute``, ``expand``, ``detach``,
  allocations of uninitialised memory...) launch nothing and are not counted; copies,
  fills and every arithmetic operator are.
- :func:`graph_breaks`: where ``torch.compile`` (Dynamo) must cut the model's forward
  into separate graphs, each break a point where fusion stops and Python runs again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

#: Operators that launch no kernel although they are not views: allocations of
#: uninitialised memory, shape and metadata queries, aliasing.
NO_KERNEL = frozenset(
    {
        'empty',
        'empty_like',
        'empty_strided',
        'new_empty',
        'new_empty_strided',
        'detach',
        'alias',
        'lift_fresh',
        'is_same_size',
        'sym_size',
        'sym_stride',
        'sym_numel',
        'sym_storage_offset',
        '_has_compatible_shallow_copy_type',
        'set_',
        'resize_',
        'record_stream',
        '_reshape_alias',
        '_unsafe_view',
        'unsafe_split',
        '_record_function_enter_new',  # profiler annotations
        '_record_function_exit',
    }
)


def launches_kernel(func) -> bool:
    """Whether an ATen operator overload launches work on the device."""
    if getattr(func, 'is_view', False):
        return False
    return func._schema.name.split('::')[-1] not in NO_KERNEL


def count_ops(fn: Callable[[], object]) -> tuple[int, Counter]:
    """Run ``fn()`` and count the kernel-launching ATen operators it dispatches (see
    :func:`launches_kernel`): the total and a Counter by operator name."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: Counter = Counter()

    class Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if launches_kernel(func):
                counts[func._schema.name.split('::')[-1]] += 1
            return func(*args, **(kwargs or {}))

    with Counting():
        fn()
    return sum(counts.values()), counts


def graph_breaks(module, *inputs) -> tuple[int, list[str]]:
    """Graph breaks ``torch.compile(module)`` meets on ``module(*inputs)`` (its forward,
    in the module's current train/eval mode), and their reasons."""
    import copy

    import torch
    from torch._dynamo.utils import counters

    # explain() compiles nothing for real, but counts its graphs and breaks in Dynamo's
    # counters, which a --compile measurement reads: leave them as they were
    before = copy.deepcopy(counters)
    try:
        explanation = torch._dynamo.explain(module)(*inputs)
    finally:
        counters.clear()
        counters.update(before)
    reasons = [str(getattr(b, 'reason', b)).splitlines()[0] for b in explanation.break_reasons]
    return int(explanation.graph_break_count), sorted(set(reasons))


def training_step_ops(model, x, target, autocast=None) -> tuple[int, Counter]:
    """Operators of one training step of ``model`` on ``(x, target)``: forward, cross
    entropy, backward and a fused AdamW update (one kernel for every trainable, as on a
    GPU; the CPU's per-parameter loop would count what a GPU never launches). Counted
    on the second step, once the optimizer's state exists; the model's parameters move."""
    import contextlib

    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    try:
        optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
    except RuntimeError:  # no fused kernel for this device: the multi-tensor one
        optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=True)

    def step():
        with autocast() if autocast else contextlib.nullcontext():
            loss = F.cross_entropy(model(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    counted = count_ops(step)
    optimizer.zero_grad(set_to_none=True)
    return counted
