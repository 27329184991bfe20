"""Measure every method side by side: parameters, FLOPs, train step, memory, inference.

Each method is measured in a fresh subprocess (so that peak memory is its own), all in
one run of ``tools/benchmark.py``, with warm-up iterations and the median of several
repeats. Times are reported as ratios to the frozen backbone's inference forward (the
floor any method pays) and to full fine-tuning on the same backbone. The floor is timed
again inside every method's process, in turns with the method's own inference, so that
the inference ratio (e.g. "merged methods within 2% of the frozen forward") does not
depend on clock drift between processes.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

#: name -> backbone tuners (ViT host); 'frozen' is the reference without any tuner.
METHODS: dict[str, list[dict]] = {
    'frozen': [],
    'full_finetune': [dict(type='mmwst.FullFineTune')],
    'linear_probe': [dict(type='mmwst.LinearProbe')],
    'bitfit': [dict(type='mmwst.BitFit')],
    'ln_tune': [dict(type='mmwst.LNTune')],
    'ssf': [dict(type='mmwst.SSF')],
    'lora': [dict(type='mmwst.LoRA', rank=8)],
    'adapter': [dict(type='mmwst.Adapter', bottleneck=8)],
    'adaptformer': [dict(type='mmwst.AdaptFormer', bottleneck=64)],
    'vpt_deep': [dict(type='mmwst.VPT', num_prompts=10)],
    'wst': [dict(type='mmwst.WST')],
    'hst': [dict(type='mmwst.HST')],
    'freqfit_lora': [dict(type='mmwst.LoRA', rank=8), dict(type='mmwst.FreqFit')],
    'rlrr': [dict(type='mmwst.RLRR')],
    'patt': [dict(type='mmwst.PATT', rank=8)],
    'prefix': [dict(type='mmwst.PrefixTuning')],
    'dense_wst_hst': [],  # mmwst.DenseTunedViT with its defaults (through the ViT)
    'dense_beside_vit': [],  # the same, host_grad=False: never back-propagates the ViT
}
#: Suffix of a method name that turns on gradient checkpointing of the frozen blocks
#: (``with_cp=True``), e.g. ``'rlrr+cp'``.
CP_SUFFIX = '+cp'
#: Run by default after METHODS: the methods whose memory is closest to full fine-tuning,
#: with checkpointing.
CHECKPOINTED = ('ssf+cp', 'rlrr+cp', 'hst+cp', 'dense_wst_hst+cp')
ARCHS = {
    'b': dict(arch='b', patch_size=16),
    'tiny': dict(
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128), patch_size=8
    ),
}


def base_method(method: str) -> str:
    """``'rlrr+cp'`` -> ``'rlrr'``; raises on an unknown name."""
    base = method[: -len(CP_SUFFIX)] if method.endswith(CP_SUFFIX) else method
    if base not in METHODS:
        raise ValueError(
            f'unknown method {method!r}; known: {", ".join(METHODS)} (append {CP_SUFFIX!r} '
            'for gradient checkpointing of the frozen blocks)'
        )
    return base


def _build(method: str, arch: str, img_size: int, num_classes: int = 100):
    import torch
    from torch import nn

    from mmwst.models import DenseTunedViT, TunedVisionTransformer

    kwargs = dict(ARCHS[arch], img_size=img_size, with_cp=method.endswith(CP_SUFFIX))
    method = base_method(method)
    if method in ('dense_wst_hst', 'dense_beside_vit'):
        if arch == 'tiny':
            kwargs['hst'] = dict(channels=(16, 32, 48, 64), num_heads=(1, 2, 2, 4))
        backbone = DenseTunedViT(host_grad=method == 'dense_wst_hst', **kwargs)
    else:
        tuners = list(METHODS[method])
        if method == 'hst' and arch == 'tiny':
            tuners = [dict(type='mmwst.HST', channels=(8, 12, 16, 32), num_heads=(1, 2, 2, 4))]
        out_type = 'avg_patch' if method == 'wst' else 'cls_token'
        backbone = TunedVisionTransformer(tuners=tuners, out_type=out_type, **kwargs)
    backbone.init_weights()

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            with torch.no_grad():
                feat = self._pool(backbone(torch.zeros(1, 3, img_size, img_size)))
            self.head = nn.Linear(feat.shape[-1], num_classes)

        @staticmethod
        def _pool(outs):
            feat = outs[-1]
            return feat.mean(dim=(2, 3)) if feat.dim() == 4 else feat

        def forward(self, x):
            return self.head(self._pool(self.backbone(x)))

    return Classifier()


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
    model = _build(method, arch, img_size).to(device)
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
        reference = _build('frozen', arch, img_size).to(device).eval()

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
            'import json, sys, mmwst\nfrom mmwst.utils.benchmark import measure\n'
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


COLUMNS = [
    ('method', 'method', '{}'),
    ('trainable', 'trainable', '{:,}'),
    ('total', 'total', '{:,}'),
    ('flops', 'GFLOPs (fwd)', '{:.2f}'),
    ('train_step_s', 'train step (s)', '{:.3f}'),
    ('train_vs_frozen_fwd', 'train / frozen fwd', '{:.2f}x'),
    ('train_vs_full_ft', 'train / full FT', '{:.2f}x'),
    ('train_img_s', 'train img/s', '{:.1f}'),
    ('peak_mem_mb', 'peak mem (MB)', '{:.0f}'),
    ('mem_vs_full_ft', 'mem / full FT', '{:.2f}x'),
    ('infer_s', 'inference (s)', '{:.3f}'),
    ('frozen_infer_s', 'frozen inference, same run (s)', '{:.3f}'),
    ('infer_vs_frozen', 'inference / frozen', '{:.3f}x'),
    ('infer_img_s', 'inference img/s', '{:.1f}'),
    ('infer_tflops_s', 'inference TFLOP/s', '{:.2f}'),
    ('infer_peak_share', 'share of peak', '{:.1%}'),
    ('merged_inference', 'merged', '{}'),
]


def _cell(result: dict, key: str, fmt: str) -> str:
    value = result.get(key)
    if value is None:
        return '-'
    if key == 'flops':
        value = value / 1e9
    return fmt.format(value)


def machine_description(device: str) -> str:
    import torch

    desc = (
        f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads '
        f'(torch uses {torch.get_num_threads()}), torch {torch.__version__}'
    )
    if device == 'cuda' and torch.cuda.is_available():
        desc += f', {torch.cuda.get_device_name()}'
    return desc


def write_outputs(results: list[dict], out_prefix: str, title: str) -> list[str]:
    import csv

    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    header = [label for _, label, _ in COLUMNS]
    rows = [[_cell(r, key, fmt) for key, _, fmt in COLUMNS] for r in results]
    paths = [f'{out_prefix}.md', f'{out_prefix}.csv', f'{out_prefix}.png', f'{out_prefix}.json']
    with open(paths[0], 'w') as f:
        f.write(f'{title}\n\n| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header) + '\n')
        f.writelines('| ' + ' | '.join(row) + ' |\n' for row in rows)
        for result in results:
            if result.get('profile'):
                f.write('\n' + format_profile(result) + '\n')
    with open(paths[1], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    with open(paths[3], 'w') as f:
        json.dump(results, f, indent=2)
    _chart(results, paths[2], title)
    return paths


def _chart(results: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    trained = [r for r in results if r.get('train_vs_frozen_fwd') is not None]
    names = [r['method'] for r in trained]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names)), 4.0))
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs],
        [r['train_vs_frozen_fwd'] for r in trained],
        width=0.4,
        label='train step / frozen forward',
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [r.get('infer_vs_frozen') or 0 for r in trained],
        width=0.4,
        label='inference / frozen forward',
    )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=45, ha='right')
    ax.set_ylabel('ratio to the frozen forward')
    ax.set_title(title, fontsize='small')
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_profile(result: dict) -> str:
    """Markdown tables of one method's profiled training step."""
    prof = result['profile']
    lines = [
        f'### Profile: {result["method"]} (one training step, {prof["clock"]} '
        f'self time {prof["total_ms"]:.0f} ms)',
        '',
        '| operator | self (ms) | share | calls |',
        '|---|---:|---:|---:|',
    ]
    lines += [
        f'| `{op["op"]}` | {op["self_ms"]:.1f} | {op["share"]:.1%} | {op["calls"]} |'
        for op in prof['ops']
    ]
    if prof['parts']:
        lines += [
            '',
            '| part (forward, inclusive) | time (ms) | calls |',
            '|---|---:|---:|',
        ]
        lines += [
            f'| {part["part"]} | {part["forward_ms"]:.1f} | {part["calls"]} |'
            for part in prof['parts']
        ]
    return '\n'.join(lines)
