"""Timing, memory, FLOPs and profiles of one method, each in a fresh subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence

from .methods import base_method, build_classifier
from .ops import (
    compiled_kernels,
    compiled_step_kernels,
    count_ops,
    graph_breaks,
    training_step_ops,
)

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: ``--sdpa`` choice -> the ``torch.nn.attention.SDPBackend`` pinned for the whole
#: measurement ('default': PyTorch's own choice, no context).
SDPA_BACKENDS = {
    'default': None,
    'flash': 'FLASH_ATTENTION',
    'efficient': 'EFFICIENT_ATTENTION',
    'cudnn': 'CUDNN_ATTENTION',
    'math': 'MATH',
}

#: torch.compile's modes for the inductor backend (``--compile inductor:MODE``):
#: 'reduce-overhead' captures the compiled steps as CUDA graphs (one launch per graph
#: instead of one per kernel), the 'max-autotune' ones also tune the kernels.
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')

#: The modes that capture the compiled graphs as CUDA graphs, on a CUDA device.
CUDA_GRAPH_MODES = ('reduce-overhead', 'max-autotune')

#: Dense (no sparsity) peak TFLOP/s by a substring of ``torch.cuda.get_device_name()``,
#: first match wins: (bf16 / fp16 tensor cores, fp32 without TF32). NVIDIA's data sheets.
PEAK_TFLOPS = (
    ('GH200', 989.0, 67.0),
    ('H100 PCIe', 756.0, 51.0),
    ('H100 NVL', 835.0, 60.0),
    ('H200 NVL', 835.0, 60.0),
    ('H100', 989.0, 67.0),  # SXM ('NVIDIA H100 80GB HBM3')
    ('H200', 989.0, 67.0),  # SXM
    ('A100', 312.0, 19.5),
)


def peak_tflops_for(device_name: str | None, amp: str) -> tuple[float | None, str]:
    """The device's dense peak for the measured precision, and where it comes from.

    bf16 / fp16 autocast: the tensor-core peak; no autocast: the fp32 peak without TF32
    (PyTorch's default ``float32_matmul_precision='highest'``). ``(None, why)`` when the
    device is not in :data:`PEAK_TFLOPS`.
    """
    precision = 'fp32 without TF32' if amp == 'none' else f'{amp} dense'
    for key, half, fp32 in PEAK_TFLOPS:
        if device_name and key in device_name:
            peak = fp32 if amp == 'none' else half
            return peak, f'{peak:g} TFLOP/s ({precision}, auto: {device_name})'
    device = f'the {device_name}' if device_name else 'a CPU'
    return None, f'unknown for {device} (pass --peak-tflops N for the share of peak)'


def sdpa_context(sdpa: str = 'default'):
    """A context pinning scaled-dot-product attention to one backend (or nothing)."""
    if sdpa not in SDPA_BACKENDS:
        raise ValueError(f'unknown sdpa backend {sdpa!r}; known: {", ".join(SDPA_BACKENDS)}')
    if SDPA_BACKENDS[sdpa] is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[sdpa])])


def _compiled_graphs(counter: str = 'unique_graphs') -> int:
    """Graphs torch.compile has compiled in this process so far (``'graph_breaks'``: the
    graph breaks it met)."""
    if 'torch._dynamo' not in sys.modules:  # nothing compiled: don't import Dynamo for it
        return 0
    try:
        from torch._dynamo.utils import counters

        if counter == 'graph_breaks':
            return int(sum(counters['graph_break'].values()))
        return int(counters['stats'].get(counter, 0))
    except Exception:  # a private counter: 0 if it moves
        return 0


def captures_cuda_graphs(compile: str | None, device: str) -> bool:
    """Whether ``--compile BACKEND:MODE`` on ``device`` captures CUDA graphs."""
    return device == 'cuda' and bool(compile) and compile.partition(':')[2] in CUDA_GRAPH_MODES


@contextlib.contextmanager
def cudagraph_skips():
    """While open, collect the compiled graphs inductor does not capture as CUDA graphs
    (``mode='reduce-overhead'``) and why: a graph it cannot capture (a mutated input, a
    CPU tensor, dynamic shapes...) then runs kernel by kernel, and a timing that looks
    like CUDA graphs' is not. Yields a dict filled on exit: ``count``, inductor's own
    counter of skips, and ``reasons``, each of its skip messages with how often it came.
    (On a CPU inductor counts every graph as skipped, without a message: CUDA graphs are
    CUDA's.)"""
    import logging

    from torch._dynamo.utils import counters
    from torch._inductor import cudagraph_utils

    found: dict = {'count': 0, 'reasons': {}}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = _one_line(record.getMessage())
            found['reasons'][message] = found['reasons'].get(message, 0) + 1

    # inductor's one route for a skip: a warning on this logger and a counter
    log, keep = cudagraph_utils.cudagraphs_log, Keep(logging.WARNING)
    disabled, log.disabled = log.disabled, False
    log.addHandler(keep)
    before = counters['inductor']['cudagraph_skips']
    try:
        yield found
    finally:
        log.removeHandler(keep)
        log.disabled = disabled
        found['count'] = counters['inductor']['cudagraph_skips'] - before


def _timed(fns, device, warmup: int, repeats: int) -> tuple[list[float], list[float], int]:
    """Median time of each function, timed in turns (a, b, a, b, ...) after ``warmup``
    untimed rounds (at least one); also the time of each function's first call
    (compilation, cuDNN and allocator warm-up) and the graphs torch.compile compiled
    during the timed rounds (0 when warm-up absorbed compilation)."""
    import torch

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    firsts = []
    sync()
    for fn in fns:  # the first round of warm-up, each call timed on its own
        start = time.perf_counter()
        fn()
        sync()
        firsts.append(time.perf_counter() - start)
    for _ in range(warmup - 1):
        for fn in fns:
            fn()
    sync()
    graphs = _compiled_graphs()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            sync()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], firsts, _compiled_graphs() - graphs


def peak_tensor_mb(step, optimizer) -> float:
    """The most tensor memory one training step holds at once (MiB), counted from the
    allocations and frees that ``torch.profiler`` records (``profile_memory``), plus the
    optimizer's state: what CUDA's ``max_memory_allocated`` measures over the step,
    without the CPU allocator's retained or fragmented pages that the resident-set peak
    (``peak_mem_mb``) also holds. The gradients are released first, so that every byte
    the step allocates and frees is seen."""
    import torch
    from torch.profiler import ProfilerActivity

    optimizer.zero_grad(set_to_none=True)
    with torch.profiler.profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    changes = sorted(
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.self_cpu_memory_usage
    )
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    state = sum(
        t.numel() * t.element_size()
        for values in optimizer.state.values()
        for t in values.values()
        if isinstance(t, torch.Tensor)
    )
    return (peak + state) / 2**20


def _cpu_flash_attention_formulas() -> dict:
    """FLOP formulas for the CPU flash-attention kernels, which
    ``torch.utils.flop_counter`` does not count (its CUDA twins it does)."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    formulas = {}
    for name, formula in (
        ('_scaled_dot_product_flash_attention_for_cpu', forward),
        ('_scaled_dot_product_flash_attention_for_cpu_backward', backward),
    ):
        if hasattr(aten, name):
            formulas[getattr(aten, name)] = formula
    return formulas


def count_flops(fn) -> float | None:
    """FLOPs that ``fn()`` executes, counted by ``torch.utils.flop_counter``: matrix
    products, convolutions and attention (forward and backward), 2 FLOPs per
    multiply-add; elementwise work (norms, activations, the optimizer) is not counted."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False, custom_mapping=_cpu_flash_attention_formulas()) as c:
            fn()
        return float(c.get_total_flops())
    except Exception:  # an op the counter cannot follow: report n/a
        return None


_SDPA_KERNEL = 'aten::_scaled_dot_product_'


def attention_kernels(fn) -> list[str]:
    """The scaled-dot-product-attention kernels (aten ops) that ``fn()`` runs: which
    backend a ``--sdpa`` choice actually reached."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    # the backend's own op ('aten::_scaled_dot_product_flash_attention'...), not the
    # dispatching 'aten::scaled_dot_product_attention' nor the kernels it calls
    return sorted({e.key for e in prof.key_averages() if e.key.startswith(_SDPA_KERNEL)})


def measure(
    method: str,
    arch: str = 'b',
    img_size: int = 224,
    batch: int = 8,
    device: str = 'cpu',
    amp: str = 'none',
    warmup: int = 2,
    repeats: int = 5,
    profile: bool = False,
    sdpa: str = 'default',
    compile: str | None = None,
    ops_only: bool = False,
    counts: bool = True,
    frozen_dtype: str | None = None,
) -> dict:
    """Measure one method in this process (called by the worker subprocess).

    ``ops_only``: only what does not depend on the machine's speed - parameters,
    operators per training step and per inference forward, graph breaks - in seconds.
    ``counts=False`` leaves those counts out of a timing run (they are the same on every
    machine, and tracing for the graph breaks takes seconds per method).
    ``frozen_dtype`` (``'bf16'``, ``'fp16'``) holds every method's frozen host weights in
    that type, the frozen reference's too (full fine-tuning freezes nothing): with
    ``amp`` of the same type the frozen weights then need no cast in any step.

    Order matters for peak memory: training is timed first (the resident-set peak of a
    fresh process is then the training peak), inference next, FLOPs last. Inference
    takes twice the repeats: merged methods are compared to the frozen forward within a
    few percent.

    ``sdpa`` pins the attention backend (:data:`SDPA_BACKENDS`) for everything measured;
    ``compile`` (a ``torch.compile`` backend, e.g. ``'inductor'``, or ``'inductor:MODE'``
    with torch.compile's mode, e.g. ``'inductor:reduce-overhead'``) compiles the model for
    training and, after merging, again for inference (and the frozen reference alike);
    warm-up (at least 2 rounds) absorbs compilation, whose cost is reported separately
    as the first call's excess over the median. FLOPs and the attention kernels use the
    eager model; ``profile``, the compiled step when compiled (its kernels, without the
    parts: hooks would cut the graph).
    """
    import torch

    torch.manual_seed(0)
    dtype = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[amp]
    if compile:
        warmup = max(warmup, 2)  # a guard that fails on the 2nd call recompiles in warm-up
        graphs_before = _compiled_graphs(), _compiled_graphs('graph_breaks')
    model = build_classifier(method, arch, img_size, frozen_dtype=frozen_dtype).to(device)
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    target = torch.randint(0, 100, (batch,), device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    report = dict(
        method=method,
        arch=arch,
        img_size=img_size,
        batch=batch,
        device=device,
        amp=amp,
        frozen_dtype=frozen_dtype,
        sdpa=sdpa,
        compile=compile,
        warmup=warmup,
        repeats=repeats,
        torch=torch.__version__,
        trainable=sum(p.numel() for p in model.backbone.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.backbone.parameters()),
    )
    if device == 'cuda':
        report['device_name'] = torch.cuda.get_device_name()
        report['float32_matmul_precision'] = torch.get_float32_matmul_precision()

    def autocast():
        return torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None)

    def compiled(module):
        if not compile:
            return module
        backend, _, mode = compile.partition(':')  # 'inductor:reduce-overhead'
        return torch.compile(module, backend=backend, mode=mode or None)

    if ops_only:
        return dict(report, **_ops_report(model, method, x, target, autocast, compile, device))
    with sdpa_context(sdpa):
        if method != 'frozen':
            optimizer = torch.optim.AdamW(trainable, lr=1e-4)
            scaler = torch.amp.GradScaler(device, enabled=amp == 'fp16')
            model.train()
            net = compiled(model)

            def forward_backward(module):
                with autocast():
                    loss = torch.nn.functional.cross_entropy(module(x), target)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()

            def step(module=net):
                forward_backward(module)
                scaler.step(optimizer)
                scaler.update()

            rss_before = _rss_mb()
            if device == 'cuda':
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            (step_s,), (first_s,), graphs = _timed([step], device, warmup, repeats)
            report['train_step_s'] = step_s
            report['train_first_step_s'] = first_s
            report['train_img_s'] = batch / step_s
            report['peak_mem_mb'] = (
                (torch.cuda.max_memory_allocated() - base) / 2**20
                if device == 'cuda'
                else max(_peak_rss_mb() - rss_before, 0.0)
            )
            if compile:
                report['train_compile_s'] = max(first_s - step_s, 0.0)
                report['train_recompiled_while_timing'] = graphs
            # the peak of live tensors, allocator aside (on CUDA the same as peak_mem_mb)
            report['peak_tensor_mb'] = (
                report['peak_mem_mb']
                if device == 'cuda'
                else peak_tensor_mb(lambda: step(model), optimizer)
            )
            # FLOPs of one forward + backward of the eager model (the step's AdamW update
            # is elementwise and not counted); checkpointed blocks count their recompute
            report['train_flops'] = count_flops(lambda: forward_backward(model))
            optimizer.zero_grad(set_to_none=True)
            if profile and compile:  # the compiled step's kernels: what the compiler made
                report['profile'] = profile_step(model, step, device, top=25, labelled=False)
            elif profile:
                report['profile'] = profile_step(model, lambda: step(model), device)
            if profile and report['profile']['busy_ms'] is not None:
                # the share of the timed step the GPU is busy: the rest is the host's
                busy = report['profile']['busy_ms'] / 1e3 / report['train_step_s']
                report['profile']['busy_share'] = busy
            # what a GPU would launch: operators of one step of the eager model, and the
            # graph breaks torch.compile meets in its forward (0: one graph)
            if counts:
                report['train_ops'] = training_step_ops(model, x, target, autocast)[0]
                report['graph_breaks'], report['graph_break_reasons'] = graph_breaks(model, x)
        model.eval()
        if compile:
            torch._dynamo.reset()  # merging rewrites the model: compile it afresh
        merged = False
        tuners = getattr(model.backbone, 'tuners', [])
        if len(tuners) and all(t.mergeable for t in tuners):
            model.backbone.merge_tuners()
            merged = True
        report['merged_inference'] = merged
        net = compiled(model)

        def infer(module=net):
            with torch.no_grad(), autocast():
                module(x)

        # the floor, measured in this process and interleaved with the method's own runs,
        # so that drifting CPU clocks or a noisy neighbour affect both alike
        if method == 'frozen':
            (infer_s,), firsts, graphs = _timed([infer], device, warmup, 2 * repeats)
            report['infer_s'] = report['frozen_infer_s'] = infer_s
        else:
            frozen = build_classifier('frozen', arch, img_size, frozen_dtype=frozen_dtype)
            reference = compiled(frozen.to(device).eval())

            def infer_frozen():
                with torch.no_grad(), autocast():
                    reference(x)

            medians, firsts, graphs = _timed((infer, infer_frozen), device, warmup, 2 * repeats)
            report['infer_s'], report['frozen_infer_s'] = medians
        if compile:
            report['infer_compile_s'] = max(firsts[0] - report['infer_s'], 0.0)
            report['infer_recompiled_while_timing'] = graphs
        report['infer_img_s'] = batch / report['infer_s']
        report['attention_kernels'] = attention_kernels(lambda: infer(model))
        if counts:
            report['infer_ops'] = count_ops(lambda: infer(model))[0]
        report['flops'] = count_flops(lambda: infer(model))
    if report['flops']:
        report['infer_tflops_s'] = report['flops'] / report['infer_s'] / 1e12
    if report.get('train_flops'):
        report['train_tflops_s'] = report['train_flops'] / report['train_step_s'] / 1e12
        if report['flops']:
            report['train_flops_vs_fwd'] = report['train_flops'] / report['flops']
    if compile:
        report['compile_s'] = report.get('train_compile_s', 0.0) + report['infer_compile_s']
        # graphs compiled for this measurement (0: nothing was compiled) and the graph
        # breaks met on the way (each one splits a model into more graphs)
        report['compiled_graphs'] = _compiled_graphs() - graphs_before[0]
        report['compile_graph_breaks'] = _compiled_graphs('graph_breaks') - graphs_before[1]
    return report


def _ops_report(
    model, method: str, x, target, autocast, compile: str | None = None, device: str = 'cpu'
) -> dict:
    """Operators per training step (and graph breaks) of a trained method, then per
    inference forward, merged where the method merges (as :func:`measure` times it).
    With ``compile`` (inductor), also the kernels one step and one inference forward of
    the compiled model launch (:func:`~.ops.compiled_kernels`)."""
    import torch

    if compile and compile.partition(':')[0] != 'inductor':
        raise ValueError(
            f'--ops-only --compile {compile}: kernels are counted in the code inductor '
            'generates; use --compile inductor'
        )
    report = {}
    if method != 'frozen':
        model.train()
        report['train_ops'] = training_step_ops(model, x, target, autocast)[0]
        report['graph_breaks'], report['graph_break_reasons'] = graph_breaks(model, x)
        if compile:
            counted = compiled_step_kernels(model, x, target, autocast, device)
            report['compiled_train_kernels'] = counted[0]
            # by kind ('generated': inductor's own; the rest by library operator), JSON only
            report['compiled_train_kernels_by_op'] = dict(counted[1].most_common())
    model.eval()
    tuners = getattr(model.backbone, 'tuners', [])
    if len(tuners) and all(t.mergeable for t in tuners):
        model.backbone.merge_tuners()

    def infer(module):
        with torch.no_grad(), autocast():
            module(x)

    report['infer_ops'] = count_ops(lambda: infer(model))[0]
    if compile:
        torch._dynamo.reset()  # merging rewrote the model: compile it afresh
        net = torch.compile(model)
        counted = compiled_kernels(lambda: infer(net), device)
        report['compiled_infer_kernels'] = counted[0]
        report['compiled_infer_kernels_by_op'] = dict(counted[1].most_common())
    return report


def profile_step(model, step, device: str, top: int = 15, labelled: bool = True) -> dict:
    """One training step under torch.profiler: the operators with the most self time,
    and the forward time spent inside each part of the model (inclusive).

    Parts: the frozen ViT's patch embedding and blocks, and every tuner's modules (and
    the dense backbone's ``wst`` / ``side`` / ``pyramid``) down to three levels (list
    members share one label, e.g. ``HST.side.net.blocks``, ``dense.wst.dwt``). Times are
    inclusive: a tuner part called from inside a block (a hook) counts in both the
    block and itself, a module in both itself and its parent.

    ``saved``: what the step keeps for its backward pass, by part - the bytes of every
    tensor autograd saves (``torch.autograd.graph.saved_tensors_hooks``; each storage
    counted once, parameters and buffers excluded), charged to the innermost labelled
    module running when it was saved (``other``: outside any). These activations are
    what a mode that never back-propagates through the ViT avoids.

    ``labelled=False``: the operators only (no parts, nothing saved counted), for a
    compiled step, whose graph hooks on its modules would cut.
    """
    import torch
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity

    labels = {}
    backbone = model.backbone if labelled else None
    for name in ('patch_embed', 'layers', 'ln1', 'pre_norm'):
        module = getattr(backbone, name, None)
        if isinstance(module, torch.nn.ModuleList):
            labels.update(dict.fromkeys(module, f'vit.{name}'))
        elif isinstance(module, torch.nn.Module):
            labels[module] = f'vit.{name}'
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.ParameterList)
    parts = [(type(t).__name__, t) for t in getattr(backbone, 'tuners', [])]
    # the dense backbone's parts: WST's branch, HST's side network, the pyramid
    wst = getattr(backbone, 'wst', None)
    dense = dict(
        wst=getattr(wst, 'branch', None),
        side=getattr(backbone, 'side', None),
        pyramid=getattr(backbone, 'pyramid', None),
    )
    parts += [(f'dense.{n}', m) for n, m in dense.items() if isinstance(m, torch.nn.Module)]
    for kind, tuner in parts:
        for path, module in tuner.named_modules():
            # 'side.net.blocks.0.1' -> 'side.net.blocks': list members share their label
            names = [p for p in path.split('.') if p and not p.isdigit()]
            if names and len(names) <= 3 and not isinstance(module, containers):
                labels.setdefault(module, f'{kind}.{".".join(names)}')
    if labelled:
        labels[model.head] = 'head'
    stack, active, handles = [], [], []
    for module, label in labels.items():

        def enter(_module, _args, label=label):
            range_ = record_function(f'## {label}')
            range_.__enter__()
            stack.append(range_)
            active.append(label)

        def leave(_module, _args, _output):
            stack.pop().__exit__(None, None, None)
            active.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))

    # the storages of the model's own tensors: saved for backward, but not activations
    owned = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved, seen = {}, set()

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key and key not in owned and key not in seen:
            seen.add(key)
            label = active[-1] if active else 'other'
            saved[label] = saved.get(label, 0) + storage.nbytes()
        return tensor

    activities = [ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    try:
        saving = (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
            if labelled
            else contextlib.nullcontext()
        )
        with torch.profiler.profile(activities=activities) as prof, saving:
            step()
            if device == 'cuda':
                torch.cuda.synchronize()
    finally:
        for handle in handles:
            handle.remove()
    events = prof.key_averages()
    key = 'self_device_time_total' if device == 'cuda' else 'self_cpu_time_total'
    ops = [e for e in events if not e.key.startswith('## ') and not _device_annotation(e)]
    total = sum(getattr(e, key) for e in ops) or 1.0
    ops.sort(key=lambda e: getattr(e, key), reverse=True)
    busy_ms, kernels = device_busy(events)
    return dict(
        clock='device' if device == 'cuda' else 'cpu',
        compiled=not labelled,
        # on a GPU the operators' device time counts each kernel twice (under the
        # operator that launched it and as itself); busy_ms and kernels count it once
        total_ms=total / 1e3,
        busy_ms=busy_ms if device == 'cuda' else None,
        kernels=kernels if device == 'cuda' else None,
        ops=[
            dict(
                op=e.key,
                self_ms=getattr(e, key) / 1e3,
                share=getattr(e, key) / total,
                calls=e.count,
            )
            for e in ops[:top]
        ],
        parts=part_times(events, device) if labelled else [],
        saved_mb=sum(saved.values()) / 2**20,
        saved=sorted(
            (dict(part=label, saved_mb=nbytes / 2**20) for label, nbytes in saved.items()),
            key=lambda d: d['saved_mb'],
            reverse=True,
        ),
    )


def part_times(events, device: str) -> list[dict]:
    """The labelled parts (``'## part'`` ranges) of a profile's averages, slowest first:
    ``forward_ms``, the host's time inside the part (on a GPU, launching its kernels),
    and on a GPU ``device_ms``, the device time of every kernel launched inside it -
    where the forward's GPU time goes. Each part from its host-side range: on a GPU the
    profiler also records a range as a device-side annotation of the same name, left
    out; a compiled step's own ``'## Call CompiledFxGraph ##'`` ranges are not parts."""
    from torch.autograd import DeviceType

    rows = [
        dict(
            part=e.key[3:],
            forward_ms=e.cpu_time_total / 1e3,
            device_ms=e.device_time_total / 1e3 if device == 'cuda' else None,
            calls=e.count,
        )
        for e in events
        if e.key.startswith('## ')
        and not e.key.endswith(' ##')
        and getattr(e, 'device_type', DeviceType.CPU) == DeviceType.CPU
    ]
    return sorted(rows, key=lambda d: d['device_ms'] or d['forward_ms'], reverse=True)


def _device_annotation(event) -> bool:
    """Whether a profiled event is the device-side span of an annotated range: on a GPU
    the profiler records each ``record_function`` range (``Optimizer.step#AdamW.step``,
    the parts' ``'## ...'``) also as a device event covering the kernels launched inside
    it, which would count their time twice."""
    from torch.autograd import DeviceType

    return bool(getattr(event, 'is_user_annotation', False)) and (
        getattr(event, 'device_type', DeviceType.CPU) != DeviceType.CPU
    )


def _device_work(events) -> list:
    """The device's own events in a profile's averages - its kernels, copies and fills;
    the device-side spans of annotated ranges (``record_function``: the optimizer's
    step, the labelled parts) are not work of their own and are left out
    (:func:`_device_annotation`)."""
    from torch.autograd import DeviceType

    return [
        e
        for e in events
        if getattr(e, 'device_type', None) == DeviceType.CUDA and not _device_annotation(e)
    ]


def device_busy(events) -> tuple[float, int]:
    """(milliseconds, count) of the device's own work in a profile's averages
    (:func:`_device_work`), each kernel once: the time the GPU was busy during the
    profiled step (kernels of one stream do not overlap)."""
    device = _device_work(events)
    return sum(e.self_device_time_total for e in device) / 1e3, sum(e.count for e in device)


def device_kernels(events) -> tuple[int, Counter]:
    """The kernels, copies and fills a GPU ran in a profile's averages
    (:func:`_device_work`), by name, each as often as it ran."""
    counts: Counter = Counter()
    for event in _device_work(events):
        counts[event.key] += event.count
    return sum(counts.values()), counts


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one_line(text: str, limit: int = 300) -> str:
    line = ' '.join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + '...'


def worker(method: str, options: dict) -> int:
    """The body of one method's subprocess: print ``RESULT <json>``, with ``error`` (and
    the traceback) in place of the figures if the method fails, e.g. an attention
    backend that does not support its shapes, or running out of memory."""
    import traceback

    try:
        import mmwst  # noqa: F401  (registers the tuners)

        if captures_cuda_graphs(options.get('compile'), options.get('device', 'cpu')):
            with cudagraph_skips() as skips:
                result = measure(method, **options)
            result['cudagraph_skips'] = skips['count']
            result['cudagraph_skip_reasons'] = skips['reasons']
        else:
            result = measure(method, **options)
    except Exception as exc:
        message = str(exc).strip().splitlines()
        result = dict(
            method=method,
            error=_one_line(f'{type(exc).__name__}: {message[0] if message else ""}'),
            error_log=traceback.format_exc()[-6000:],
        )
    print('RESULT ' + json.dumps(result), flush=True)
    return 1 if 'error' in result else 0


def _run_worker(method: str, options: dict, timeout: float | None) -> dict:
    """Run :func:`worker` in a fresh interpreter; a crash or a timeout becomes an error."""
    code = (
        # faulthandler: a crash in native code still leaves a Python traceback on stderr
        f'import faulthandler, sys\nfaulthandler.enable()\nsys.path.insert(0, {TOOLS!r})\n'
        f'from benchmarking.measure import worker\nsys.exit(worker({method!r}, {options!r}))'
    )
    # in this process's group (not a session of its own), so that Ctrl-C or a kill of the
    # whole run also ends it, and it never outlives the run on the GPU
    proc = subprocess.Popen(
        [sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a grandchild (a compile worker) holds the pipes
            stdout, stderr = '', ''
        return dict(method=method, error=f'timed out after {timeout:g} s', error_log=stderr[-6000:])
    except BaseException:  # Ctrl-C: end the method's process before giving up
        proc.kill()
        raise
    line = [ln for ln in stdout.splitlines() if ln.startswith('RESULT ')]
    if line:
        return json.loads(line[-1][len('RESULT ') :])
    last = [ln for ln in stderr.splitlines() if ln.strip()]
    rc = proc.returncode
    how = f'killed by signal {-rc}' if rc < 0 else f'exit code {rc}'  # 9: out of host RAM?
    return dict(
        method=method,
        error=_one_line(how + (f': {last[-1]}' if last else ' (no output)')),
        error_log=stderr[-6000:],
    )


def run_all(
    methods: Sequence[str],
    profile: Sequence[str] = (),
    peak_tflops: float | str | None = None,
    timeout: float | None = None,
    rounds: int = 1,
    **kwargs,
) -> list[dict]:
    """Measure every method in its own subprocess, one after another; with ``rounds``
    above 1, the whole list that many times in turns (A B C, A B C, ...).

    ``profile`` names the methods whose training step is also profiled (in the first
    round); ``peak_tflops`` (the device's dense peak for the measured precision, or
    ``'auto'`` to look it up by the CUDA device's name, :func:`peak_tflops_for`) adds the
    share of it that inference and training reach. A method that fails (or runs longer
    than ``timeout`` seconds) gets an ``error`` instead of figures; the others go on.
    Every result holds the method's wall time (``wall_s``: start-up, warm-up, timing,
    FLOPs). Over several rounds each ratio is taken within its round (the method against
    the references measured minutes apart at most), and :func:`combine_rounds` reports
    the median over rounds and the spread.
    """
    if rounds < 1:
        raise ValueError(f'rounds must be at least 1, got {rounds}')
    for method in [*methods, *profile]:
        base_method(method)
    sdpa_context(kwargs.get('sdpa', 'default'))  # an unknown backend fails here, at once
    measured = []
    for round_index in range(rounds):
        results = []
        for index, method in enumerate(methods, 1):
            options = dict(kwargs, profile=method in profile and round_index == 0)
            start = time.perf_counter()
            try:
                result = _run_worker(method, options, timeout)
            except KeyboardInterrupt:
                # stopped (Ctrl-C, or a time limit's SIGINT): keep what was measured - the
                # rounds that finished, or the methods of the first round that did
                if measured:
                    kept = f'the {len(measured)} finished round(s)'
                elif results:
                    measured.append(add_ratios(results))
                    kept = f'the {len(results)} method(s) measured'
                else:
                    raise
                print(f'[benchmark] interrupted at {method}: reporting {kept}', flush=True)
                return add_peak_shares(combine_rounds(measured), peak_tflops)
            result['wall_s'] = time.perf_counter() - start
            keys = ('arch', 'img_size', 'batch', 'device', 'amp', 'frozen_dtype', 'sdpa', 'compile')
            for key in keys:
                result.setdefault(key, options.get(key))
            results.append(result)
            if 'error' in result:
                outcome = f'FAILED after {result["wall_s"]:.1f} s: {result["error"]}'
            else:
                outcome = f'done in {result["wall_s"]:.1f} s'
            where = f'round {round_index + 1}/{rounds}, ' if rounds > 1 else ''
            print(f'[benchmark] {where}{index}/{len(methods)} {method}: {outcome}', flush=True)
        measured.append(add_ratios(results))
    return add_peak_shares(combine_rounds(measured), peak_tflops)


#: figures that come from a clock: over several rounds, the median and the spread
TIMED_KEYS = (
    'train_step_s',
    'train_first_step_s',
    'train_img_s',
    'train_tflops_s',
    'infer_s',
    'frozen_infer_s',
    'infer_img_s',
    'infer_tflops_s',
    'train_vs_frozen_fwd',
    'train_vs_full_ft',
    'infer_vs_frozen',
    'wall_s',
)


def combine_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One result per method from several rounds of the same list of methods (each
    round's ratios already taken within it): every timed figure is the median over the
    rounds that succeeded, its values per round are kept (``<key>_rounds``), and
    ``<key>_spread`` is (largest - smallest) / median. Figures that do not depend on
    the clock (counts, memory, FLOPs, the profile) are the first successful round's. A
    method that failed in every round keeps its last error; ``rounds_failed`` counts the
    rounds it failed in."""
    import statistics

    if len(rounds) == 1:
        return rounds[0]
    combined = []
    for per_round in zip(*rounds, strict=True):
        ok = [r for r in per_round if 'error' not in r]
        if not ok:
            combined.append(dict(per_round[-1], rounds=len(per_round)))
            continue
        result = dict(ok[0], rounds=len(per_round), rounds_failed=len(per_round) - len(ok))
        for key in TIMED_KEYS:
            values = [r[key] for r in ok if r.get(key) is not None]
            if not values:
                continue
            middle = statistics.median(values)
            result[key] = middle
            result[f'{key}_rounds'] = values
            result[f'{key}_spread'] = (max(values) - min(values)) / middle if middle else None
        combined.append(result)
    return combined


def add_peak_shares(results: list[dict], peak_tflops: float | str | None) -> list[dict]:
    """``infer_peak_share`` / ``train_peak_share``: the TFLOP/s reached over the peak
    (``'auto'``: :func:`peak_tflops_for` the device each result ran on)."""
    for r in results:
        if peak_tflops is None or 'error' in r:
            continue
        if peak_tflops == 'auto':
            peak, source = peak_tflops_for(r.get('device_name'), r.get('amp', 'none'))
        else:
            peak = float(peak_tflops)
            source = f'{peak:g} TFLOP/s (--peak-tflops)'
        r['peak_tflops'], r['peak_source'] = peak, source
        if not peak:
            continue
        for kind in ('infer', 'train'):
            if r.get(f'{kind}_tflops_s'):
                r[f'{kind}_peak_share'] = r[f'{kind}_tflops_s'] / peak
    return results


def add_ratios(results: list[dict]) -> list[dict]:
    ok = [r for r in results if 'error' not in r]
    by_method = {r['method']: r for r in ok}
    full = by_method.get('full_finetune', {})
    lora, frozen = by_method.get('lora', {}), by_method.get('frozen', {})
    for r in ok:
        # operators (what a GPU launches) against LoRA's and full fine-tuning's step and
        # the frozen forward, counted in the same way on the same model size
        for key, ref, name in (
            ('train_ops', lora, 'train_ops_vs_lora'),
            ('train_ops', full, 'train_ops_vs_full_ft'),
            ('infer_ops', frozen, 'infer_ops_vs_frozen'),
            ('compiled_train_kernels', lora, 'compiled_train_vs_lora'),
            ('compiled_train_kernels', full, 'compiled_train_vs_full_ft'),
            ('compiled_infer_kernels', frozen, 'compiled_infer_vs_frozen'),
        ):
            if r.get(key) is not None and ref.get(key):
                r[name] = r[key] / ref[key]
        if 'frozen_infer_s' not in r:  # operators only: nothing timed
            continue
        # the frozen forward timed in the method's own process, in turns with it
        floor = r['frozen_infer_s']
        step = r.get('train_step_s')
        r['train_vs_frozen_fwd'] = step / floor if step is not None else None
        r['infer_vs_frozen'] = r['infer_s'] / floor
        if full.get('train_step_s') and 'train_step_s' in r:
            r['train_vs_full_ft'] = r['train_step_s'] / full['train_step_s']
            r['mem_vs_full_ft'] = (
                r['peak_mem_mb'] / full['peak_mem_mb'] if full.get('peak_mem_mb') else None
            )
            r['tensor_mem_vs_full_ft'] = (
                r['peak_tensor_mb'] / full['peak_tensor_mb']
                if full.get('peak_tensor_mb') and r.get('peak_tensor_mb') is not None
                else None
            )
    return results
