"""tools/benchmark.py runs on a tiny configuration and reports every figure."""

import json
import os.path as osp

import pytest

from tests.helpers import REPO, TOOLS, run_tool

pytestmark = pytest.mark.slow


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
    assert lora['infer_vs_frozen'] == pytest.approx(lora['infer_s'] / lora['frozen_infer_s'])
    assert lora['merged_inference'] and not results['wst']['merged_inference']
    assert lora['trainable'] == 4 * 2 * 8 * (64 + 64)
    for key in ('train_step_s', 'infer_s', 'peak_mem_mb', 'train_vs_frozen_fwd'):
        assert lora[key] is not None and lora[key] >= 0
    assert lora['flops'] and lora['flops'] > 0
    assert lora['train_img_s'] == pytest.approx(2 / lora['train_step_s'])
    assert lora['infer_peak_share'] == pytest.approx(lora['flops'] / lora['infer_s'] / 1e12)
    # the profiled step: operators by self time, shares summing to at most 1, and the
    # forward time of the frozen blocks and of WST's own parts
    profile = results['wst']['profile']
    assert 'profile' not in lora
    assert profile['ops'] and 0 < sum(op['share'] for op in profile['ops']) <= 1 + 1e-6
    parts = {p['part']: p for p in profile['parts']}
    assert parts['vit.layers']['calls'] == 4 and parts['head']['calls'] == 1
    assert any(name.startswith('WST.') for name in parts), parts
    # the dense backbone's own parts are labelled too; beside the ViT, no block runs backward
    dense = {p['part'] for p in results['dense_beside_vit']['profile']['parts']}
    assert {'dense.wst.dwt', 'dense.side.net.blocks', 'dense.side.bridges'} <= dense, dense
    md = (tmp_path / 'bench.md').read_text()
    assert '| lora |' in md and 'train / full FT' in md
    assert '### Profile: wst' in md and 'aten::' in md
    assert (tmp_path / 'bench.png').stat().st_size > 5000
    assert 'wrote' in proc.stdout
