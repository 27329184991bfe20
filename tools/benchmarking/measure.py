"""Timing, memory, FLOPs and profiles of one method, each in a fresh subprocess."""

from __future__ import annotations

import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from .methods import base_method, build_classifier

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _median_time(fn, device, warmup: int, repeats: int) -> float:
    return _interleaved_median_times([fn], device, warmup, repeats)[0]


def _interleaved_median_times(fns, device, warmup: int, repeats: int) -> list[float]:
    """Median time of each function, timed in turns (a, b, a, b, ...)."""
    import torch

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    for _ in range(warmup):
        for fn in fns:
            fn()
    sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            sync()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _flops(model, x) -> float | None:
    try:
        from mmengine.analysis import FlopAnalyzer

        analyzer = FlopAnalyzer(model, (x,))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return float(analyzer.total())
    except Exception:  # tracing fails on some ops (e.g. complex FFT): report n/a
        return None


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
) -> dict:
    """Measure one method in this process (called by the worker subprocess).

    Order matters for peak memory: training is timed first (the resident-set peak of a
    fresh process is then the training peak), inference next, FLOPs (a jit trace) last.
    Inference takes twice the repeats: merged methods are compared to the frozen
    forward within a few percent.
    """
    import torch

    torch.manual_seed(0)
    dtype = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[amp]
    model = build_classifier(method, arch, img_size).to(device)
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
        trainable=sum(p.numel() for p in model.backbone.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.backbone.parameters()),
    )

    def autocast():
        return torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None)

    if method != 'frozen':
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        scaler = torch.amp.GradScaler(device, enabled=amp == 'fp16')
        model.train()

        def step():
            with autocast():
                loss = torch.nn.functional.cross_entropy(model(x), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        rss_before = _rss_mb()
        if device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        report['train_step_s'] = _median_time(step, device, warmup, repeats)
        report['train_img_s'] = batch / report['train_step_s']
        report['peak_mem_mb'] = (
            (torch.cuda.max_memory_allocated() - base) / 2**20
            if device == 'cuda'
            else max(_peak_rss_mb() - rss_before, 0.0)
        )
        if profile:
            report['profile'] = profile_step(model, step, device)
    model.eval()
    merged = False
    tuners = getattr(model.backbone, 'tuners', [])
    if len(tuners) and all(t.mergeable for t in tuners):
        model.backbone.merge_tuners()
        merged = True
    report['merged_inference'] = merged

    def infer():
        with torch.no_grad(), autocast():
            model(x)

    # the floor, measured in this process and interleaved with the method's own runs, so
    # that drifting CPU clocks or a noisy neighbour affect both alike
    if method == 'frozen':
        report['infer_s'] = report['frozen_infer_s'] = _median_time(
            infer, device, warmup, 2 * repeats
        )
    else:
        reference = build_classifier('frozen', arch, img_size).to(device).eval()

        def infer_frozen():
            with torch.no_grad(), autocast():
                reference(x)

        report['infer_s'], report['frozen_infer_s'] = _interleaved_median_times(
            (infer, infer_frozen), device, warmup, 2 * repeats
        )
    report['infer_img_s'] = batch / report['infer_s']
    with torch.no_grad():
        report['flops'] = _flops(model, x)
    if report['flops']:
        report['infer_tflops_s'] = report['flops'] / report['infer_s'] / 1e12
    return report


def profile_step(model, step, device: str, top: int = 15) -> dict:
    """One training step under torch.profiler: the operators with the most self time,
    and the forward time spent inside each part of the model (inclusive).

    Parts: the frozen ViT's patch embedding and blocks, and every tuner's modules (and
    the dense backbone's ``wst`` / ``side`` / ``pyramid``) down to two levels (list
    members share one label, e.g. ``HST.side.net``, ``dense.wst.dwt``). Times are
    inclusive: a tuner part called from inside a block (a hook) counts in both the
    block and itself, a module in both itself and its parent.
    """
    import torch
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity

    labels = {}
    backbone = model.backbone
    for name in ('patch_embed', 'layers', 'ln1', 'pre_norm'):
        module = getattr(backbone, name, None)
        if isinstance(module, torch.nn.ModuleList):
            labels.update(dict.fromkeys(module, f'vit.{name}'))
        elif isinstance(module, torch.nn.Module):
            labels[module] = f'vit.{name}'
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.ParameterList)
    parts = [(type(t).__name__, t) for t in getattr(backbone, 'tuners', [])]
    parts += [  # the dense backbone's own branch, side network and pyramid
        (f'dense.{name}', getattr(backbone, name))
        for name in ('wst', 'side', 'pyramid')
        if isinstance(getattr(backbone, name, None), torch.nn.Module)
    ]
    for kind, tuner in parts:
        for path, module in tuner.named_modules():
            # 'side.blocks.0.1' -> 'side.blocks': list members share their list's label
            parts = [p for p in path.split('.') if p and not p.isdigit()]
            if parts and len(parts) <= 2 and not isinstance(module, containers):
                labels.setdefault(module, f'{kind}.{".".join(parts)}')
    labels[model.head] = 'head'
    stack, handles = [], []
    for module, label in labels.items():

        def enter(_module, _args, label=label):
            range_ = record_function(f'## {label}')
            range_.__enter__()
            stack.append(range_)

        def leave(_module, _args, _output):
            stack.pop().__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))

    activities = [ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    try:
        with torch.profiler.profile(activities=activities) as prof:
            step()
            if device == 'cuda':
                torch.cuda.synchronize()
    finally:
        for handle in handles:
            handle.remove()
    events = prof.key_averages()
    key = 'self_device_time_total' if device == 'cuda' else 'self_cpu_time_total'
    ops = [e for e in events if not e.key.startswith('## ')]
    total = sum(getattr(e, key) for e in ops) or 1.0
    ops.sort(key=lambda e: getattr(e, key), reverse=True)
    parts = [e for e in events if e.key.startswith('## ')]
    return dict(
        clock='device' if device == 'cuda' else 'cpu',
        total_ms=total / 1e3,
        ops=[
            dict(
                op=e.key,
                self_ms=getattr(e, key) / 1e3,
                share=getattr(e, key) / total,
                calls=e.count,
            )
            for e in ops[:top]
        ],
        parts=sorted(
            (dict(part=e.key[3:], forward_ms=e.cpu_time_total / 1e3, calls=e.count) for e in parts),
            key=lambda d: d['forward_ms'],
            reverse=True,
        ),
    )


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_all(
    methods: Sequence[str],
    profile: Sequence[str] = (),
    peak_tflops: float | None = None,
    **kwargs,
) -> list[dict]:
    """Measure every method in its own subprocess, one after another.

    ``profile`` names the methods whose training step is also profiled;
    ``peak_tflops`` (the device's dense peak for the measured precision) adds the share
    of it that inference reaches.
    """
    results = []
    for method in [*methods, *profile]:
        base_method(method)
    for method in methods:
        options = dict(kwargs, profile=method in profile)
        code = (
            f'import json, sys\nsys.path.insert(0, {TOOLS!r})\nimport mmwst\n'
            'from benchmarking.measure import measure\n'
            f'print("RESULT " + json.dumps(measure({method!r}, **{options!r})))'
        )
        proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f'measuring {method} failed:\n{proc.stderr[-3000:]}')
        result = json.loads(line[-1][len('RESULT ') :])
        if peak_tflops and result.get('infer_tflops_s'):
            result['infer_peak_share'] = result['infer_tflops_s'] / peak_tflops
        results.append(result)
        print(f'[benchmark] {method}: done', flush=True)
    return add_ratios(results)


def add_ratios(results: list[dict]) -> list[dict]:
    full = {r['method']: r for r in results}.get('full_finetune', {})
    for r in results:
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
    return results
