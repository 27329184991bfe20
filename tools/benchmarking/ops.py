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


def _training_step(model, x, target, autocast=None, net=None):
    """One training step of ``model`` (run as ``net``, e.g. compiled; default: itself)
    on ``(x, target)`` as a callable: forward, cross entropy, backward and a fused AdamW
    update (one kernel for every trainable, as on a GPU; the CPU's per-parameter loop
    would count what a GPU never launches); and the optimizer."""
    import contextlib

    import torch
    import torch.nn.functional as F

    net = model if net is None else net
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
    except RuntimeError:  # no fused kernel for this device: the multi-tensor one
        optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=True)

    def step():
        with autocast() if autocast else contextlib.nullcontext():
            loss = F.cross_entropy(net(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, optimizer


def training_step_ops(model, x, target, autocast=None) -> tuple[int, Counter]:
    """Operators of one training step of ``model`` on ``(x, target)``
    (:func:`_training_step`), counted on the second step, once the optimizer's state
    exists; the model's parameters move."""
    step, optimizer = _training_step(model, x, target, autocast)
    step()
    counted = count_ops(step)
    optimizer.zero_grad(set_to_none=True)
    return counted


#: In a CPU profile, the kernels inductor generated (with its ``cpp.enable_kernel_profile``),
#: one per fused loop nest: ``graph_<g>_cpp_fused_<ops>_<k>``.
GENERATED = '_cpp_fused_'
#: Operators that the profiler records although no kernel runs (the conjugate and
#: negative bits are never set here); composites such as ``aten::to`` are left out by
#: :func:`_launches_by_name` itself.
_NO_OWN_WORK = frozenset({'resolve_conj', 'resolve_neg'})


def _launches_by_name(name: str, cache: dict) -> bool:
    """Whether a profiled ATen operator (``'aten::mm'``: no overload named) is one the
    dispatcher runs below autograd and that launches a kernel, judged by its overloads on
    tensors (not ``out=`` variants nor those on Python scalars and lists): not a view or
    metadata operation (:func:`launches_kernel`), and not a composite
    (``CompositeImplicitAutograd``) whose work is the operators it calls - those are
    counted instead, as :func:`count_ops` sees them."""
    if name not in cache:
        import torch

        base = name.split('::')[-1]
        packet = getattr(torch.ops.aten, base, None)
        overloads = []
        for overload in packet.overloads() if packet is not None else ():
            op = getattr(packet, overload)
            args = op._schema.arguments
            on_tensors = bool(args) and 'Tensor' in str(args[0].type)  # or a list of them
            if on_tensors and not any(a.is_out for a in args):
                overloads.append(op)
        cache[name] = bool(
            overloads
            and base not in _NO_OWN_WORK
            and all(launches_kernel(o) for o in overloads)
            and not all(
                torch._C._dispatch_has_kernel_for_dispatch_key(
                    o.name(), 'CompositeImplicitAutograd'
                )
                for o in overloads
            )
        )
    return cache[name]


def launched_kernels(events) -> tuple[int, Counter]:
    """The kernels a profiled CPU run launched (``torch.profiler``'s ``events()``): each
    kernel inductor generated (:data:`GENERATED`, counted as ``'generated'``) and each
    ATen operator that launches one (:func:`_launches_by_name`) at its outermost call -
    a matrix product is one launch, whatever it calls inside (on the CPU, ``addmm`` first
    copies its bias into the output: a detail of the CPU's kernel, not another launch).
    Without compiled code this is :func:`count_ops`'s count."""
    cache: dict = {}

    def eligible(event) -> bool:
        if GENERATED in event.name:
            return True
        return event.name.startswith('aten::') and _launches_by_name(event.name, cache)

    counts: Counter = Counter()
    for event in events:
        if not eligible(event):
            continue
        parent = event.cpu_parent
        while parent is not None and not eligible(parent):
            parent = parent.cpu_parent
        if parent is None:  # outermost: its own launch, with whatever it calls inside
            counts['generated' if GENERATED in event.name else event.name[6:]] += 1
    return sum(counts.values()), counts


def compiled_kernels(fn: Callable[[], object], device: str = 'cpu') -> tuple[int, Counter]:
    """Kernels one call of ``fn`` launches, where ``fn`` runs a ``torch.compile``d model:
    what ``compile=True`` launches where the eager count (:func:`count_ops`) counts each
    operator. ``fn`` runs twice first (compilation, and a guard that recompiles on the
    second call), then once under the profiler. On the CPU, inductor's generated kernels
    and the ATen operators the compiled code and the eager rest call
    (:func:`launched_kernels`; inductor fuses for the CPU's C++ as for a GPU's Triton,
    in the same scheduler, but the two back-ends' fusion rules differ in details); on a
    GPU, the device's own kernels, copies and fills, counted as they ran."""
    import torch
    from torch._inductor import config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    with inductor_config.patch({'cpp.enable_kernel_profile': True}):
        fn()
        fn()
        activities = [ProfilerActivity.CPU]
        if device == 'cuda':
            activities.append(ProfilerActivity.CUDA)
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            fn()
            if device == 'cuda':
                torch.cuda.synchronize()
    if device != 'cuda':
        return launched_kernels(prof.events())
    from .measure import device_kernels

    return device_kernels(prof.key_averages())


def compiled_step_kernels(model, x, target, autocast=None, device: str = 'cpu'):
    """Kernels of one training step (:func:`_training_step`) of ``model`` compiled with
    ``torch.compile`` (inductor, default mode) (:func:`compiled_kernels`)."""
    import torch

    step, optimizer = _training_step(model, x, target, autocast, net=torch.compile(model))
    counted = compiled_kernels(step, device)
    optimizer.zero_grad(set_to_none=True)
    return counted
