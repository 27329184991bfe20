"""tools/benchmark.py runs on a tiny configuration and reports every figure; its
attention-backend, torch.compile, peak and failure options reach what they claim."""

import importlib
import importlib.util
import json
import os.path as osp
import subprocess
import sys
import types

import pytest

from tests.helpers import REPO, TOOLS, run_tool

if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)  # the tool's package, tools/benchmarking

import benchmarking  # noqa: E402

# the module (the package's name 'measure' is the function)
bench_measure = importlib.import_module('benchmarking.measure')

TINY = dict(arch='tiny', img_size=32, batch=2, warmup=1, repeats=1)


def test_the_benchmarked_methods_are_those_that_say_so():
    """Each tuner class whose ``benchmarked`` is true is timed by some entry of the
    benchmark's list, and no entry uses one that says false."""
    from benchmarking.methods import METHODS

    from mmwst.models.tuners import BaseTuner
    from mmwst.registry import MODELS

    used = {t['type'].split('.')[-1] for tuners in METHODS.values() for t in tuners}
    tuners = {
        name: cls
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseTuner)
    }
    assert used <= set(tuners)
    assert used == {name for name, cls in tuners.items() if cls.benchmarked}, used


@pytest.mark.slow
def test_benchmark_tiny(tmp_path):
    out = tmp_path / 'bench'
    proc = run_tool(
        [
            osp.join(TOOLS, 'benchmark.py'),
            '--arch',
            'tiny',
            '--img-size',
            '32',
            '--batch',
            '2',
            '--warmup',
            '1',
            '--repeats',
            '1',
            '--methods',
            'lora',
            'wst',
            'lora+cp',
            'dense_beside_vit',
            '--out',
            str(out),
            '--profile',
            'wst',
            'dense_beside_vit',
            '--peak-tflops',
            '1.0',
            # the operator counts and graph breaks are checked in-process below
            # (test_no_counts_..., test_every_method_compiles_...): not again here
            '--no-counts',
        ],
        cwd=REPO,
    )
    results = {r['method']: r for r in json.loads((tmp_path / 'bench.json').read_text())}
    assert list(results) == [
        'frozen',
        'full_finetune',
        'lora',
        'wst',
        'lora+cp',
        'dense_beside_vit',
    ]
    assert results['lora+cp']['trainable'] == results['lora']['trainable']
    assert results['frozen']['infer_vs_frozen'] == 1.0
    # every method's floor is re-timed in its own process, in turns with its inference
    assert all(r['frozen_infer_s'] > 0 for r in results.values())
    assert results['full_finetune']['train_vs_full_ft'] == 1.0
    lora = results['lora']
    # the timed rounds are real durations inside the method's own process: together
    # (the first training step, the timed one, two timed rounds of inference and of the
    # frozen floor) they fit in the wall time its process ran; the ratios themselves are
    # checked against a clock with known times in test_ratios_follow_the_timed_runs
    timed = lora['train_first_step_s'] + lora['train_step_s']
    timed += 2 * (lora['infer_s'] + lora['frozen_infer_s'])
    assert 0 < timed < lora['wall_s'], (timed, lora['wall_s'])
    assert lora['infer_vs_frozen'] > 0 and lora['train_img_s'] > 0
    assert lora['merged_inference'] and not results['wst']['merged_inference']
    assert lora['trainable'] == 4 * 2 * 8 * (64 + 64)
    for key in ('train_step_s', 'infer_s', 'peak_mem_mb', 'train_vs_frozen_fwd'):
        assert lora[key] is not None and lora[key] >= 0
    assert lora['flops'] and lora['flops'] > 0
    assert lora['infer_peak_share'] == pytest.approx(lora['flops'] / lora['infer_s'] / 1e12)
    # counted training FLOPs: forward + backward, i.e. about 3x the forward for full
    # fine-tuning (weight and input gradients) and 2x for LoRA (input gradients only)
    assert 2.7 < results['full_finetune']['train_flops_vs_fwd'] < 3.1
    assert 1.9 < lora['train_flops_vs_fwd'] < 2.3
    assert lora['train_peak_share'] == pytest.approx(
        lora['train_flops'] / lora['train_step_s'] / 1e12
    )
    assert all(r['wall_s'] > 0 and r['sdpa'] == 'default' for r in results.values())
    assert lora['attention_kernels'] == ['aten::_scaled_dot_product_flash_attention_for_cpu']
    # the profiled step: operators by self time, shares summing to at most 1, and the
    # forward time of the frozen blocks and of WST's own parts
    profile = results['wst']['profile']
    assert 'profile' not in lora and not profile['compiled']
    assert not any('Compiled' in op['op'] for op in profile['ops'])
    assert profile['ops'] and 0 < sum(op['share'] for op in profile['ops']) <= 1 + 1e-6
    parts = {p['part']: p for p in profile['parts']}
    assert parts['vit.layers']['calls'] == 4 and parts['head']['calls'] == 1
    assert any(name.startswith('WST.') for name in parts), parts
    # the dense backbone's own parts are labelled too; beside the ViT, no block runs backward
    dense = {p['part'] for p in results['dense_beside_vit']['profile']['parts']}
    assert {'dense.wst.dwt', 'dense.side.net.blocks', 'dense.side.bridges'} <= dense, dense
    # what autograd keeps for the backward pass, by part: WST through the ViT keeps the
    # frozen blocks' activations; beside the ViT, the blocks keep nothing
    saved = {p['part']: p['saved_mb'] for p in profile['saved']}
    assert saved['vit.layers'] > 0 and profile['saved_mb'] == pytest.approx(sum(saved.values()))
    beside = {p['part']: p['saved_mb'] for p in results['dense_beside_vit']['profile']['saved']}
    assert 'vit.layers' not in beside and beside['dense.side.net.blocks'] > 0, beside
    md = (tmp_path / 'bench.md').read_text()
    assert '| lora |' in md and 'train / full FT' in md
    assert '### Profile: wst' in md and 'aten::' in md and 'saved for backward' in md
    assert (tmp_path / 'bench.png').stat().st_size > 5000
    assert 'wrote' in proc.stdout


def test_sdpa_option_reaches_every_attention():
    """--sdpa math pins the kernel of mmpretrain's attention (frozen), of the tunable
    attention with extra key/values (prefix) and of HST's cross-attention: the math
    kernel is the only one that runs. The forward FLOPs count attention alike whichever
    kernel runs (CPU flash attention included)."""
    import mmwst  # noqa: F401

    for method in ('frozen', 'prefix', 'hst'):
        # without the operator counts and graph-break tracing (not what this checks)
        pinned = bench_measure.measure(method, sdpa='math', counts=False, **TINY)
        default = bench_measure.measure(method, counts=False, **TINY)
        assert pinned['sdpa'] == 'math'
        assert pinned['attention_kernels'] == ['aten::_scaled_dot_product_attention_math']
        assert default['attention_kernels'] == ['aten::_scaled_dot_product_flash_attention_for_cpu']
        assert pinned['flops'] == pytest.approx(default['flops']), method


def test_head_width_probe_runs_under_a_gpu_only_backend():
    """Building a classifier probes the head's width with one CPU forward; under a pinned
    backend that the CPU lacks (--sdpa efficient or cudnn, pinned while a training method
    builds its frozen reference) that probe still runs."""
    from benchmarking.methods import build_classifier

    import mmwst  # noqa: F401

    with bench_measure.sdpa_context('efficient'):
        model = build_classifier('frozen', 'tiny', 32)
    assert model.head.in_features == model.backbone.embed_dims


def test_compile_option_compiles_and_warms_up():
    """--compile: the model runs compiled ('eager' backend: Dynamo without code
    generation, seconds on a CPU) into one graph, warm-up is at least 2 rounds, nothing
    is recompiled while timing, and the first call's extra time is reported as compile
    time."""
    import mmwst  # noqa: F401

    report = bench_measure.measure('frozen', compile='eager', **TINY)
    assert report['compile'] == 'eager' and report['warmup'] == 2
    assert report['compiled_graphs'] == 1 and report['compile_graph_breaks'] == 0
    assert report['infer_recompiled_while_timing'] == 0
    assert report['compile_s'] == report['infer_compile_s'] >= 0
    assert bench_measure.measure('frozen', **TINY).get('compile_s') is None
    # warm-up rounds (the first one timed on its own), then the timed rounds, in turns
    calls = []
    medians, firsts, recompiled = bench_measure._timed(
        [lambda: calls.append('a'), lambda: calls.append('b')], 'cpu', warmup=3, repeats=2
    )
    assert calls == ['a', 'b'] * 5 and len(medians) == len(firsts) == 2 and recompiled == 0


class FakeClock:
    """``time`` for the measuring module: ``perf_counter`` reads a clock that moves only
    when the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class HangingProcess:
    """A method's process that never finishes on its own: every wait runs out (moving the
    clock by the time waited) until it is killed; afterwards the wait returns what it
    wrote, or runs out again when ``pipes_held`` (a grandchild keeps its pipes open)."""

    started: list = []

    def __init__(self, args, clock: FakeClock, pipes_held: bool = False, **kwargs) -> None:
        self.args, self.clock, self.pipes_held = args, clock, pipes_held
        self.waits: list = []
        self.killed = False
        HangingProcess.started.append(self)

    def communicate(self, timeout=None):
        self.waits.append(timeout)
        if not self.killed or self.pipes_held:
            self.clock.now += timeout
            raise subprocess.TimeoutExpired(self.args, timeout)
        return 'partial output\n', 'Traceback: still loading\n'

    def kill(self) -> None:
        self.killed = True


def _run_hanging(monkeypatch, methods, timeout, pipes_held=False) -> list[dict]:
    """``run_all`` with every method's process hanging, on a fake clock."""
    clock = FakeClock()
    HangingProcess.started = []
    fake = types.SimpleNamespace(
        Popen=lambda args, **kw: HangingProcess(args, clock, pipes_held, **kw),
        PIPE=subprocess.PIPE,
        TimeoutExpired=subprocess.TimeoutExpired,
    )
    monkeypatch.setattr(bench_measure, 'subprocess', fake)
    monkeypatch.setattr(bench_measure, 'time', clock)
    return bench_measure.run_all(methods, timeout=timeout, **TINY)


def test_a_method_past_its_timeout_is_killed_and_the_run_goes_on(monkeypatch):
    """--timeout: each method's process is waited for that long; when the wait runs out
    the process is killed, its stderr kept, its wall time is the time waited, and the
    next method still runs. A grandchild holding the pipes does not hang the run."""
    first, second = _run_hanging(monkeypatch, ['frozen', 'lora'], timeout=0.5)
    assert [r['method'] for r in (first, second)] == ['frozen', 'lora']
    for result, proc in zip((first, second), HangingProcess.started, strict=True):
        assert result['error'] == 'timed out after 0.5 s'
        assert result['error_log'] == 'Traceback: still loading\n'
        assert proc.killed and proc.waits == [0.5, 30]  # then a bounded wait for its output
        assert result['wall_s'] == 0.5  # the fake clock moved by the wait alone
        assert result['arch'] == 'tiny' and result['batch'] == 2
    assert 'infer_vs_frozen' not in first  # no ratios for a failed method

    (held,) = _run_hanging(monkeypatch, ['frozen'], timeout=2.0, pipes_held=True)
    (proc,) = HangingProcess.started
    assert proc.killed and proc.waits == [2.0, 30]
    assert held['error'] == 'timed out after 2 s' and held['error_log'] == ''
    assert held['wall_s'] == 32.0


def test_ratios_follow_the_timed_runs(monkeypatch):
    """Timings and every figure built on them, against a clock whose times are known in
    advance: a forward pass of each model moves the fake clock by a set amount (training
    and inference apart), so the medians, throughputs, ratios and peak shares are known
    exactly."""
    import mmwst  # noqa: F401

    clock = FakeClock()
    # seconds one forward pass takes: (training, inference); the frozen model is the
    # inference floor timed in the method's own process
    costs = {'frozen': (None, 0.25), 'lora': (3.0, 0.5)}
    real_build = bench_measure.build_classifier

    def build(method, arch, img_size, frozen_dtype=None):
        model = real_build(method, arch, img_size, frozen_dtype=frozen_dtype)
        train_s, infer_s = costs[method]

        def tick(module, args):
            clock.now += train_s if module.training else infer_s

        model.register_forward_pre_hook(tick)
        return model

    monkeypatch.setattr(bench_measure, 'time', clock)
    monkeypatch.setattr(bench_measure, 'build_classifier', build)
    lora = bench_measure.measure('lora', **TINY)
    assert lora['train_step_s'] == lora['train_first_step_s'] == 3.0
    assert lora['train_img_s'] == pytest.approx(2 / 3.0)  # batch 2
    assert lora['infer_s'] == 0.5 and lora['frozen_infer_s'] == 0.25
    assert lora['infer_img_s'] == pytest.approx(2 / 0.5)
    assert lora['infer_tflops_s'] == pytest.approx(lora['flops'] / 0.5 / 1e12)
    assert lora['train_tflops_s'] == pytest.approx(lora['train_flops'] / 3.0 / 1e12)
    # full fine-tuning's step taken as 6 s (its timing is the same code as LoRA's)
    full = dict(method='full_finetune', infer_s=1.0, frozen_infer_s=0.25, train_step_s=6.0)
    benchmarking.add_peak_shares([full, lora], 2.0)
    benchmarking.add_ratios([full, lora])
    assert lora['infer_vs_frozen'] == pytest.approx(2.0)  # 0.5 s / 0.25 s
    assert lora['train_vs_frozen_fwd'] == pytest.approx(12.0)  # 3 s / 0.25 s
    assert lora['train_vs_full_ft'] == pytest.approx(0.5)  # 3 s / 6 s
    assert lora['infer_peak_share'] == pytest.approx(lora['flops'] / 0.5 / 1e12 / 2.0)
    assert lora['train_peak_share'] == pytest.approx(lora['train_flops'] / 3.0 / 1e12 / 2.0)


def test_rounds_run_the_methods_in_turns_and_ratios_are_taken_within_a_round(monkeypatch):
    """--rounds 3: the list runs whole three times (A B C, A B C, A B C); each round's
    ratio compares figures measured in that round, so a machine that runs twice as slow
    for a whole round moves no ratio; the table gets the median over rounds and the
    spread. A method that fails in one round is reported from the others."""
    # seconds per training step, by round: round 2 is a slow round for everything
    steps = {
        'frozen': [None, None, None],
        'full_finetune': [6.0, 12.0, 6.0],
        'lora': [3.0, 6.0, 3.3],
        'wst': [2.0, 'error', 2.4],
    }
    calls = []

    def fake_worker(method, options, timeout):
        round_index = sum(m == method for m in calls)
        calls.append(method)
        step = steps[method][round_index]
        if step == 'error':
            return dict(method=method, error='RuntimeError: out of memory')
        result = dict(method=method, infer_s=1.0 + round_index, frozen_infer_s=0.5 + round_index)
        if step is not None:
            result.update(train_step_s=step, peak_mem_mb=100.0, train_ops=10 * (1 + len(method)))
        return result

    monkeypatch.setattr(bench_measure, '_run_worker', fake_worker)
    results = bench_measure.run_all(list(steps), rounds=3)
    assert calls == list(steps) * 3
    by = {r['method']: r for r in results}
    lora, wst = by['lora'], by['wst']
    assert lora['train_vs_full_ft_rounds'] == pytest.approx([0.5, 0.5, 0.55])
    assert lora['train_vs_full_ft'] == pytest.approx(0.5)
    assert lora['train_vs_full_ft_spread'] == pytest.approx(0.05 / 0.5)
    assert lora['train_step_s'] == pytest.approx(3.3)  # the median of the step itself
    assert lora['rounds'] == 3 and lora['rounds_failed'] == 0
    # inference against the floor of its own process: 1/0.5, 2/1.5, 3/2.5
    assert lora['infer_vs_frozen_rounds'] == pytest.approx([2.0, 2 / 1.5, 1.2])
    assert lora['infer_vs_frozen'] == pytest.approx(2 / 1.5)
    assert wst['rounds_failed'] == 1 and 'error' not in wst
    assert wst['train_vs_full_ft_rounds'] == pytest.approx([2 / 6, 0.4])
    assert wst['train_ops_vs_lora'] == pytest.approx(40 / 50)  # counts: from one round
    with pytest.raises(ValueError, match='rounds must be at least 1'):
        bench_measure.run_all(['lora'], rounds=0)
    # one round: the results as measured, no spread
    calls.clear()
    steps['wst'][0] = 2.0
    single = bench_measure.run_all(list(steps))
    assert 'rounds' not in single[2] and single[2]['train_vs_full_ft'] == pytest.approx(0.5)


@pytest.mark.slow
def test_failing_method_is_reported_not_fatal(tmp_path, monkeypatch):
    """A method whose process fails (here: an attention backend that the CPU lacks) or
    runs past --timeout gets its error in the results and table; the run goes on."""
    results = bench_measure.run_all(['lora'], sdpa='efficient', device='cpu', **TINY)
    results += _run_hanging(monkeypatch, ['frozen'], timeout=0.5)
    lora, frozen = results
    assert lora['method'] == 'lora' and lora['sdpa'] == 'efficient'
    assert lora['error'].startswith('RuntimeError: No viable backend'), lora['error']
    assert 'Traceback' in lora['error_log'] and lora['wall_s'] > 0
    assert frozen['error'] == 'timed out after 0.5 s'
    paths = benchmarking.write_outputs(results, str(tmp_path / 'bench'), 'title')
    md = open(paths[0]).read()
    assert '| error |' in md and 'No viable backend' in md and 'timed out' in md


def test_crashed_method_process_is_reported(tmp_path, monkeypatch):
    """A method's process that dies without a result (a native crash, the kernel's
    out-of-memory killer) is reported with the signal and the last line of its stderr."""
    crash = tmp_path / 'python'
    crash.write_text('#!/bin/sh\necho "Fatal Python error: Segmentation fault" >&2\nkill -SEGV $$')
    crash.chmod(0o755)
    monkeypatch.setattr(sys, 'executable', str(crash))
    (result,) = bench_measure.run_all(['lora'], **TINY)
    assert result['error'] == 'killed by signal 11: Fatal Python error: Segmentation fault'
    assert result['method'] == 'lora' and result['arch'] == 'tiny' and result['wall_s'] > 0


def test_report_of_mixed_results_and_peaks(tmp_path):
    """Ratios and peak shares skip failed methods; 'auto' peaks follow the device's name
    and precision; the table escapes an error's '|' and shows only the columns used."""
    assert bench_measure.peak_tflops_for('NVIDIA H100 80GB HBM3', 'bf16')[0] == 989
    assert bench_measure.peak_tflops_for('NVIDIA H200', 'fp16')[0] == 989
    assert bench_measure.peak_tflops_for('NVIDIA H100 80GB HBM3', 'none')[0] == 67
    assert bench_measure.peak_tflops_for('NVIDIA H100 PCIe', 'bf16')[0] == 756
    assert bench_measure.peak_tflops_for('NVIDIA GH200 480GB', 'bf16')[0] == 989
    peak, note = bench_measure.peak_tflops_for('Tesla T4', 'bf16')
    assert peak is None and 'Tesla T4' in note and '--peak-tflops' in note
    assert bench_measure.peak_tflops_for(None, 'none')[0] is None

    def ok(method, step=None, flops=1e12):
        result = dict(
            method=method,
            amp='bf16',
            device_name='NVIDIA H100 80GB HBM3',
            infer_s=0.5,
            frozen_infer_s=0.5,
            flops=flops,
            infer_tflops_s=flops / 0.5 / 1e12,
        )
        if step:
            result.update(
                train_step_s=step,
                peak_mem_mb=100.0,
                train_flops=3 * flops,
                train_tflops_s=3 * flops / step / 1e12,
            )
        return result

    results = [
        ok('frozen'),
        ok('full_finetune', step=2.0),
        dict(method='prefix', error='RuntimeError: a | b', amp='bf16'),
    ]
    benchmarking.add_peak_shares(results, 'auto')
    benchmarking.add_ratios(results)
    full, failed = results[1], results[2]
    assert full['train_vs_full_ft'] == 1.0 and full['infer_vs_frozen'] == 1.0
    assert full['train_peak_share'] == pytest.approx(1.5 / 989)
    assert full['infer_peak_share'] == pytest.approx(2 / 989)
    assert '989 TFLOP/s (bf16 dense, auto: NVIDIA H100 80GB HBM3)' == full['peak_source']
    assert set(failed) == {'method', 'error', 'amp'}
    md = open(benchmarking.write_outputs(results, str(tmp_path / 'b'), 't')[0]).read()
    assert 'RuntimeError: a \\| b' in md and '| compile (s) |' not in md
    header, prefix_row = md.splitlines()[2], md.splitlines()[6]
    assert prefix_row.startswith('| prefix |')
    assert prefix_row.count('|') - prefix_row.count('\\|') == header.count('|')


def test_an_interrupted_run_reports_what_it_measured(monkeypatch):
    """Ctrl-C or a time limit's SIGINT in the middle of a run: the methods of the first
    round measured so far (or the rounds that finished) are reported, not lost; an
    interrupt before anything was measured still stops the run."""
    calls, stop = [], {}

    def fake_worker(method, options, timeout):
        calls.append(method)
        if len(calls) == stop['at']:
            raise KeyboardInterrupt
        return dict(method=method, infer_s=1.0, frozen_infer_s=1.0, train_step_s=2.0)

    monkeypatch.setattr(bench_measure, '_run_worker', fake_worker)
    methods = ['frozen', 'full_finetune', 'lora', 'wst']
    stop['at'] = 3  # in the first round, at lora
    results = bench_measure.run_all(methods)
    assert [r['method'] for r in results] == ['frozen', 'full_finetune']
    calls.clear()
    stop['at'] = 7  # in the second of two rounds: the first round whole
    results = bench_measure.run_all(methods, rounds=2)
    assert [r['method'] for r in results] == methods
    calls.clear()
    stop['at'] = 1
    with pytest.raises(KeyboardInterrupt):
        bench_measure.run_all(methods)


def test_no_counts_leaves_the_counts_out_of_a_timing_run():
    """counts=False (--no-counts): no operator counts and no graph-break tracing, the
    timings as before."""
    options = dict(arch='tiny', img_size=32, batch=1, warmup=1, repeats=1)
    timed = bench_measure.measure('lora', counts=False, **options)
    assert timed['train_step_s'] > 0 and timed['infer_s'] > 0
    assert not {'train_ops', 'infer_ops', 'graph_breaks'} & set(timed)
    counted = bench_measure.measure('lora', **options)
    assert counted['train_ops'] > 0 and counted['graph_breaks'] == 0


def test_a_compiled_step_is_profiled_compiled():
    """--profile with --compile profiles the compiled training step (what the compiler
    made, the graph's own ranges not taken for parts); the eager step otherwise
    (test_benchmark_tiny)."""
    options = dict(arch='tiny', img_size=32, batch=1, warmup=1, repeats=1, counts=False)
    compiled = bench_measure.measure('lora', compile='eager', profile=True, **options)['profile']
    assert compiled['compiled'] and compiled['parts'] == [] and compiled['ops']
    assert 'saved' not in compiled or not compiled['saved']
    ops = {op['op'] for op in compiled['ops']}
    assert any('Compiled' in op or 'Torch-Compiled' in op for op in ops), ops


def test_gpu_busy_time_counts_each_kernel_once():
    """A GPU profile lists each kernel twice (under its operator, and as itself): the busy
    time is the device events' own time, once, and the report gives it with the share of
    the timed step (the rest, the GPU waiting on the host)."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(device, ms, count, annotation=False):
        return SimpleNamespace(
            device_type=device,
            self_device_time_total=ms * 1e3,
            count=count,
            is_user_annotation=annotation,
        )

    events = [
        event(DeviceType.CPU, 6.0, 98),  # aten::mm, its kernels' time charged to it
        event(DeviceType.CUDA, 4.0, 50),  # the kernels themselves
        event(DeviceType.CUDA, 2.0, 48),
        event(DeviceType.CPU, 0.0, 1),
        # Optimizer.step#AdamW.step's range, on the host and as a device-side span over
        # kernels already counted
        event(DeviceType.CPU, 0.0, 1, annotation=True),
        event(DeviceType.CUDA, 3.0, 1, annotation=True),
    ]
    assert benchmarking.device_busy(events) == (6.0, 98)
    # the compiled kernels on a GPU: the device's events, each as often as it ran
    for i, e in enumerate(events):
        e.key = f'k{i}'
    assert bench_measure.device_kernels(events) == (98, {'k1': 50, 'k2': 48})
    profile = dict(clock='device', compiled=True, total_ms=12.0, busy_ms=6.0, kernels=98)
    profile.update(busy_share=0.75, ops=[], parts=[], saved=[])
    title = benchmarking.format_profile(dict(method='hst', profile=profile)).splitlines()[0]
    assert title == (
        '### Profile: hst (one compiled training step, device self time 12 ms; '
        'GPU busy 6.0 ms in 98 kernels, 75% of the timed step)'
    )
    profile.update(clock='cpu', busy_ms=None, kernels=None, busy_share=None, compiled=False)
    title = benchmarking.format_profile(dict(method='wst', profile=profile)).splitlines()[0]
    assert title == '### Profile: wst (one training step, cpu self time 12 ms)'


def test_parts_on_a_gpu_give_their_kernels_device_time_once():
    """A labelled part's row comes from its host-side range: the host's time in it and,
    on a GPU, the device time of the kernels launched inside it; the device-side copy
    of the range and a compiled graph's own ranges are not parts; slowest first."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(key, device, host_ms, device_ms, count=12, annotation=True):
        return SimpleNamespace(
            key=key,
            device_type=device,
            cpu_time_total=host_ms * 1e3,
            device_time_total=device_ms * 1e3,
            count=count,
            is_user_annotation=annotation,
        )

    events = [
        event('## vit.layers', DeviceType.CPU, 9.0, 20.0),
        event('## vit.layers', DeviceType.CUDA, 0.0, 21.0),
        event('## HST.side.net.blocks', DeviceType.CPU, 12.0, 30.0),
        event('## Call CompiledFxGraph abc ##', DeviceType.CPU, 1.0, 1.0, count=1),
        event('aten::mm', DeviceType.CPU, 1.0, 2.0, annotation=False),
    ]
    rows = benchmarking.part_times(events, 'cuda')
    assert rows == [
        dict(part='HST.side.net.blocks', forward_ms=12.0, device_ms=30.0, calls=12),
        dict(part='vit.layers', forward_ms=9.0, device_ms=20.0, calls=12),
    ]
    profile = dict(clock='device', compiled=False, total_ms=60.0, busy_ms=None, kernels=None)
    profile.update(ops=[], parts=rows, saved=[])
    md = benchmarking.format_profile(dict(method='hst', profile=profile))
    assert '| part (forward, inclusive) | device (ms) | host (ms) | calls |' in md
    assert '| HST.side.net.blocks | 30.0 | 12.0 | 12 |' in md
    # on the CPU there is no device time; the slowest by host time first
    rows = benchmarking.part_times(events[::-1], 'cpu')
    assert [r['part'] for r in rows] == ['HST.side.net.blocks', 'vit.layers']
    assert rows[0]['device_ms'] is None
    profile.update(clock='cpu', parts=rows)
    assert '| HST.side.net.blocks | 12.0 | 12 |' in benchmarking.format_profile(
        dict(method='hst', profile=profile)
    )


def test_the_side_networks_blocks_are_a_part_of_hsts_profile():
    """HST's side network is driven from the ViT's hooks, its blocks three levels down
    (``side.net.blocks``): they are labelled, so a profile shows their forward time."""
    import torch

    torch.manual_seed(0)
    model = benchmarking.build_classifier('hst', 'tiny', 32)
    x, target = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])

    def step():
        torch.nn.functional.cross_entropy(model(x), target).backward()

    profile = bench_measure.profile_step(model, step, 'cpu')
    parts = {p['part']: p for p in profile['parts']}
    assert parts['HST.side.net.blocks']['calls'] == 4, parts  # one block per layer
    assert parts['HST.side.net.stem']['calls'] == 1
    assert parts['HST.side.net.blocks']['device_ms'] is None


def test_compile_mode_reaches_torch_compile(monkeypatch, capsys):
    """--compile inductor:MODE: torch.compile gets the backend and the mode (the steps as
    CUDA graphs with reduce-overhead); a mode with another backend, or an unknown one, is
    refused before anything runs."""
    import torch

    calls = []

    def fake_compile(module, **kwargs):
        calls.append(kwargs)
        return module

    monkeypatch.setattr(torch, 'compile', fake_compile)
    options = dict(arch='tiny', img_size=32, batch=1, warmup=1, repeats=1, counts=False)
    report = bench_measure.measure('frozen', compile='inductor:reduce-overhead', **options)
    assert report['compile'] == 'inductor:reduce-overhead'
    assert calls and all(c == dict(backend='inductor', mode='reduce-overhead') for c in calls)
    calls.clear()
    bench_measure.measure('frozen', compile='inductor', **options)
    assert calls and all(c == dict(backend='inductor', mode=None) for c in calls)
    spec = importlib.util.spec_from_file_location('benchmark_cli2', osp.join(TOOLS, 'benchmark.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    for bad in ('eager:reduce-overhead', 'inductor:fastest'):
        with pytest.raises(SystemExit):
            cli.main(['--methods', 'lora', '--compile', bad])
        assert 'a mode goes with the inductor backend only' in capsys.readouterr().err


def test_graphs_not_captured_as_cuda_graphs_are_counted_with_inductors_reasons(
    monkeypatch, capsys, tmp_path
):
    """A run that captures CUDA graphs (reduce-overhead on a GPU) reports each method's
    compiled graphs inductor left uncaptured, with inductor's own messages, counted
    through inductor's one route for a skip; other runs carry no such field; the table
    names the method and the reasons."""
    from torch._inductor.cudagraph_utils import log_cudagraph_skip_and_bump_counter

    mutated, cpu = 'skipping cudagraphs due to mutated inputs (1 instances)', 'skipping cpu'
    with bench_measure.cudagraph_skips() as found:
        for message in (mutated, cpu, mutated):
            log_cudagraph_skip_and_bump_counter(message)
    log_cudagraph_skip_and_bump_counter(cpu)  # after the context: not counted
    assert found == {'count': 3, 'reasons': {mutated: 2, cpu: 1}}

    def fake_measure(method, **options):
        log_cudagraph_skip_and_bump_counter(mutated)
        return dict(method=method, compile=options.get('compile'))

    monkeypatch.setattr(bench_measure, 'measure', fake_measure)
    results = {}
    for device, mode in (
        ('cuda', 'reduce-overhead'),
        ('cuda', 'default'),
        ('cpu', 'reduce-overhead'),
    ):
        bench_measure.worker('hst', dict(device=device, compile=f'inductor:{mode}'))
        line = capsys.readouterr().out.strip().splitlines()[-1]
        results[device, mode] = json.loads(line.removeprefix('RESULT '))
    captured = results['cuda', 'reduce-overhead']
    assert captured['cudagraph_skips'] == 1
    assert captured['cudagraph_skip_reasons'] == {mutated: 1}
    assert 'cudagraph_skips' not in results['cuda', 'default']
    assert 'cudagraph_skips' not in results['cpu', 'reduce-overhead']
    md = open(benchmarking.write_outputs([captured], str(tmp_path / 'g'), 't')[0]).read()
    assert '| graphs not captured as CUDA graphs |' in md
    assert f'- hst: 1: {mutated}' in md


def test_cli_passes_the_new_options(tmp_path, monkeypatch):
    """--sdpa, --compile (bare: inductor), --peak-tflops auto and --timeout reach
    run_all, and the options and the peak appear in the title and the JSON."""
    spec = importlib.util.spec_from_file_location('benchmark_cli', osp.join(TOOLS, 'benchmark.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    seen = {}

    def fake_run_all(methods, **kwargs):
        seen.update(kwargs, methods=methods)
        results = [
            dict(method=m, sdpa=kwargs['sdpa'], compile=kwargs['compile'], infer_s=1.0)
            for m in methods
        ]
        for r in results:
            r['frozen_infer_s'] = 1.0
            r['peak_source'] = '989 TFLOP/s (bf16 dense, auto: NVIDIA H100 80GB HBM3)'
        return results

    monkeypatch.setattr(benchmarking, 'run_all', fake_run_all)
    out = tmp_path / 'bench'
    args = ['--methods', 'lora', '--sdpa', 'math', '--compile', '--peak-tflops', 'auto']
    assert cli.main([*args, '--timeout', '60', '--out', str(out)]) == 0
    assert seen['sdpa'] == 'math' and seen['compile'] == 'inductor'
    assert seen['peak_tflops'] == 'auto' and seen['timeout'] == 60
    assert seen['methods'] == ['frozen', 'full_finetune', 'lora']
    title = (tmp_path / 'bench.md').read_text().splitlines()[0]
    assert 'sdpa math, compile inductor' in title and 'after 2 warm-up' in title
    assert 'peak: 989 TFLOP/s (bf16 dense, auto: NVIDIA H100 80GB HBM3)' in title
    saved = json.loads((tmp_path / 'bench.json').read_text())
    assert {(r['sdpa'], r['compile']) for r in saved} == {('math', 'inductor')}
    assert seen['rounds'] == 1
    assert cli.main(['--methods', 'lora', '--rounds', '3', '--out', str(out)]) == 0
    assert seen['sdpa'] == 'default' and seen['compile'] is None and seen['peak_tflops'] is None
    assert seen['rounds'] == 3 and seen['counts'] is True
    assert cli.main(['--methods', 'lora', '--no-counts', '--out', str(out)]) == 0
    assert seen['counts'] is False
    assert seen['frozen_dtype'] is None
    assert cli.main(['--methods', 'lora', '--frozen-dtype', 'bf16', '--out', str(out)]) == 0
    assert seen['frozen_dtype'] == 'bf16'
    assert ', frozen weights bf16,' in (tmp_path / 'bench.md').read_text().splitlines()[0]
    assert cli.main(['--methods', 'lora', '--rounds', '3', '--out', str(out)]) == 0
    assert 'median of 3 rounds in turns' in (tmp_path / 'bench.md').read_text().splitlines()[0]
    with pytest.raises(SystemExit):
        cli.main(['--rounds', '0'])
    with pytest.raises(SystemExit):
        cli.main(['--sdpa', 'fast'])
    with pytest.raises(SystemExit):
        cli.main(['--peak-tflops', 'max'])


def test_peak_tensor_memory_counts_what_a_step_holds_at_once():
    """Two 40 MiB tensors alive together, then freed: an 80 MiB peak, whatever the CPU
    allocator keeps; plus the optimizer's state (AdamW: two moments per parameter)."""
    import torch
    from benchmarking.measure import peak_tensor_mb

    weight = torch.nn.Parameter(torch.zeros(1024, 256))  # 1 MiB
    optimizer = torch.optim.AdamW([weight])

    def step():
        a = torch.ones(1024, 1024, 10)  # 40 MiB
        b = a * 2  # 40 MiB more, while a lives
        del a, b
        weight.grad = torch.ones_like(weight)
        optimizer.step()

    step()  # creates the moments (2 MiB)
    peak = peak_tensor_mb(step, optimizer)
    assert 80 + 2 < peak < 80 + 2 + 1.5, peak  # + the 1 MiB gradient, at most
    assert weight.grad is not None


def test_operators_are_counted_without_views_and_metadata():
    import torch
    from benchmarking.ops import count_ops

    a, b = torch.randn(4, 3), torch.randn(4, 3)
    total, by_name = count_ops(lambda: (a + b).relu().t().unsqueeze(0).detach())
    assert total == 2 and by_name == {'add': 1, 'relu': 1}  # t, unsqueeze, detach: views
    # a reshape that cannot be a view copies: that is a kernel
    assert count_ops(lambda: a.t().reshape(-1))[1] == {'clone': 1}
    total, by_name = count_ops(lambda: torch.cat([a, b]).contiguous().transpose(0, 1).clone())
    assert by_name == {'cat': 1, 'clone': 1}


def test_frozen_weights_in_bf16_spare_the_steps_their_casts():
    """--frozen-dtype bf16 under bf16 autocast: the frozen ViT's weights are stored in
    bf16, so LoRA's step and the merged inference no longer cast them (full fine-tuning,
    which freezes nothing, is unchanged)."""
    options = dict(TINY, amp='bf16', ops_only=True)
    stored = {d: bench_measure.measure('lora', frozen_dtype=d, **options) for d in (None, 'bf16')}
    assert stored['bf16']['frozen_dtype'] == 'bf16' and stored[None]['frozen_dtype'] is None
    # 4 layers: qkv, proj and two MLP Linears, weight and bias each, cast every forward
    assert stored[None]['train_ops'] - stored['bf16']['train_ops'] >= 4 * 8
    assert stored[None]['infer_ops'] - stored['bf16']['infer_ops'] >= 4 * 8
    full = {
        d: bench_measure.measure('full_finetune', frozen_dtype=d, **options) for d in (None, 'bf16')
    }
    assert full[None]['train_ops'] == full['bf16']['train_ops']


def test_graph_breaks_are_found_and_named():
    import torch
    from benchmarking.ops import graph_breaks

    class Breaks(torch.nn.Module):
        def forward(self, x):
            x = x + 1
            torch._dynamo.graph_break()
            return x * 2

    class Whole(torch.nn.Module):
        def forward(self, x):
            return (x + 1) * 2

    x = torch.randn(2)
    count, reasons = graph_breaks(Breaks(), x)
    assert count == 1 and reasons
    assert graph_breaks(Whole(), x) == (0, [])


def test_every_method_compiles_into_one_graph_and_wst_costs_about_lora():
    """The operator targets that hold on any ViT size: no method or dense mode breaks
    torch.compile's graph, and WST's, SSF's and RLRR's training steps launch no more
    operators than 1.3x LoRA's (WST runs no wavelet transform between layers; SSF's
    pairs and RLRR's rescaling take one fused operator where plain ones took several)."""
    from benchmarking import METHODS

    import mmwst  # noqa: F401

    # the methods whose forward runs more than the host's blocks and a few hooks (FreqFit:
    # autograd functions, whose backward Dynamo traces with the forward)
    methods = ['frozen', 'lora', 'wst', 'ssf', 'hst', 'rlrr', 'dense_wst_hst', 'dense_beside_vit']
    methods.append('freqfit_lora')
    assert set(methods) <= set(METHODS)
    reports = {m: bench_measure.measure(m, ops_only=True, **TINY) for m in methods}
    broken = {m: r['graph_break_reasons'] for m, r in reports.items() if r.get('graph_breaks')}
    assert not broken
    assert all(r['infer_ops'] > 0 for r in reports.values())
    for method in ('wst', 'ssf', 'rlrr'):
        assert reports[method]['train_ops'] <= 1.3 * reports['lora']['train_ops'], method
    for method in ('lora', 'ssf', 'rlrr'):  # merged: the frozen forward exactly
        assert reports[method]['infer_ops'] == reports['frozen']['infer_ops'], method
    assert reports['wst']['infer_ops'] <= 2 * reports['frozen']['infer_ops']
    # HST and the dense backbone: on this 4-layer ViT each stage has one side block, so
    # the ratios sit above ViT-B's (where dense inference beside the ViT meets 3x the
    # frozen forward, tests/models/backbones/test_dense_vit.py); these hold the
    # stage-batched side network's counts (before it: 2.77x, 4.20x, 5.29x, 5.02x, 3.46x)
    assert reports['hst']['train_ops'] <= 2.5 * reports['lora']['train_ops']
    assert reports['hst']['infer_ops'] <= 3.6 * reports['frozen']['infer_ops']
    assert reports['dense_wst_hst']['infer_ops'] <= 4.6 * reports['frozen']['infer_ops']
    assert reports['dense_beside_vit']['infer_ops'] <= 4.6 * reports['frozen']['infer_ops']
    assert reports['dense_wst_hst']['train_ops'] <= 3.2 * reports['lora']['train_ops']


def test_kernels_counted_from_a_profile_are_the_eager_operator_count():
    """Without compiled code, the profile-based count (each launching ATen operator at
    its outermost call) is the dispatcher's count below autograd, operator for operator
    in total: a composite (``linear``, ``cross_entropy``) counts as what it calls, a
    library call (``addmm``, fused AdamW) once whatever it runs inside."""
    import torch
    from benchmarking.methods import build_classifier
    from benchmarking.ops import _training_step, count_ops, launched_kernels
    from torch.profiler import ProfilerActivity, profile

    import mmwst  # noqa: F401

    for method in ('lora', 'hst'):
        torch.manual_seed(0)
        model = build_classifier(method, 'tiny', 32).train()
        step, _ = _training_step(model, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]))
        step()
        expected = count_ops(step)[0]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        total, by_name = launched_kernels(prof.events())
        assert total == expected, method
        assert by_name['_fused_adamw_'] == 1 and by_name['addmm'] > 0
        assert not {'linear', 'cross_entropy_loss', '_local_scalar_dense'} & set(by_name)


def test_a_compiled_forward_launches_its_fused_kernels_and_library_calls():
    """The kernels of a compiled model: Linear -> LayerNorm -> GELU -> Linear runs 4
    operators eagerly and, compiled, its two matrix products with one generated kernel
    (norm and GELU fused) between them."""
    import torch
    from benchmarking.ops import compiled_kernels, count_ops

    torch._dynamo.reset()
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.GELU(), torch.nn.Linear(32, 8)
    )
    x = torch.randn(4, 16)
    with torch.no_grad():
        assert count_ops(lambda: model(x))[0] == 4
        net = torch.compile(model)
        total, by_name = compiled_kernels(lambda: net(x))
    assert by_name == {'addmm': 2, 'generated': 1} and total == 3


def test_ops_only_with_compile_counts_the_compiled_kernels():
    """--ops-only --compile: the compiled training step and merged inference forward are
    counted beside the eager operators, fewer than those (inductor fuses the elementwise
    work between the products), and reported against LoRA, full fine-tuning and the
    frozen forward; a backend that generates no kernels is refused."""
    import mmwst  # noqa: F401

    report = bench_measure.measure('lora', ops_only=True, compile='inductor', **TINY)
    assert 0 < report['compiled_train_kernels'] < report['train_ops']
    assert 0 < report['compiled_infer_kernels'] < report['infer_ops']
    for phase in ('train', 'infer'):  # by kind: inductor's own and the library calls
        kinds = report[f'compiled_{phase}_kernels_by_op']
        assert sum(kinds.values()) == report[f'compiled_{phase}_kernels'] and kinds['generated']
    results = [
        dict(method='frozen', infer_ops=45, compiled_infer_kernels=36),
        dict(method='full_finetune', train_ops=140, compiled_train_kernels=105),
        dict(report, method='lora'),
    ]
    lora = bench_measure.add_ratios(results)[2]
    assert lora['compiled_train_vs_lora'] == 1.0
    assert lora['compiled_train_vs_full_ft'] == report['compiled_train_kernels'] / 105
    assert lora['compiled_infer_vs_frozen'] == report['compiled_infer_kernels'] / 36
    with pytest.raises(ValueError, match='use --compile inductor'):
        bench_measure.measure('lora', ops_only=True, compile='eager', **TINY)
