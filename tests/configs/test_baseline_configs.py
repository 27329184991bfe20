"""Every method config builds on both hosts; ViT-B/16 counts equal the papers' formulas."""

import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmwst  # noqa: F401
from mmwst.models.param_report import parameter_report
from tests.helpers import REPO, TOOLS, run_tool

D, HIDDEN, LAYERS = 768, 3072, 12  # ViT-B/16
QKV = 3 * D
#: trainable backbone parameters of each method on ViT-B/16 (methods.md, section 6)
VIT_B16_COUNTS = {
    'linear_probe': 0,
    'full_finetune': 85_798_656,
    'bitfit': LAYERS * (QKV + D + HIDDEN + D + 2 * D) + D + D,
    'ln_tune': LAYERS * 4 * D + 2 * D,
    'ssf': LAYERS * 2 * (QKV + D + HIDDEN + D + D + D) + 2 * D + 2 * D,
    'lora': LAYERS * 2 * 8 * (D + D),
    'adapter': LAYERS * 2 * (2 * D * 8 + 8 + D),
    'adaptformer': LAYERS * (2 * D * 64 + 64 + D),
    'vpt-shallow': 10 * D,
    'vpt-deep': LAYERS * 10 * D,
}
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*vtab-1k.py')) if '_base_' not in p
)


def _method(path: str) -> str:
    name = osp.basename(path)
    return name.split('_')[0] if name.startswith('vpt-') else osp.basename(osp.dirname(path))


def _build(path: str):
    init_default_scope('mmpretrain')
    return MODELS.build(Config.fromfile(path).model)


def test_figures_match_methods_md():
    assert VIT_B16_COUNTS['bitfit'] == 102_912
    assert VIT_B16_COUNTS['ln_tune'] == 38_400
    assert VIT_B16_COUNTS['lora'] == 294_912
    assert VIT_B16_COUNTS['vpt-deep'] == 92_160


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_builds_and_counts(path):
    model = _build(path)
    report = parameter_report(model)
    assert report.trainable > report.trainable_without_head  # the head trains
    if 'vit-b16' in path:
        assert report.total_without_head >= 85_798_656
        assert report.trainable_without_head == VIT_B16_COUNTS[_method(path)]
    else:
        assert type(model.backbone).__name__ == 'TunedSwinTransformer'
        assert len(model.backbone.blocks) == 24


def test_every_baseline_has_both_hosts():
    methods = {}
    for path in CONFIGS:
        methods.setdefault(_method(path), set()).add('vit' if 'vit-b16' in path else 'swin')
    assert set(VIT_B16_COUNTS) <= set(methods)
    assert all(hosts == {'vit', 'swin'} for hosts in methods.values()), methods


def test_count_params_tool_prints_table_and_json():
    config = osp.join(REPO, 'configs', 'lora', 'vit-b16_vtab-1k.py')
    table = run_tool([osp.join(TOOLS, 'count_params.py'), config], cwd=REPO).stdout
    assert 'tuner 0: LoRA' in table and '294,912' in table and 'head' in table
    out = run_tool([osp.join(TOOLS, 'count_params.py'), config, '--json'], cwd=REPO).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report['trainable_without_head'] == 294_912
    assert report['trainable'] == 294_912 + 768 * 100 + 100
    assert report['total'] > 85_798_656
