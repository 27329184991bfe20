"""Every method config builds; ViT-B/16 counts equal the formulas in docs/methods.md."""

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
#: trainable backbone parameters of each method on ViT-B/16 (docs/methods.md)
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
    'wst': 37_056 + LAYERS * (D * 2 + 2 + 2 * D + D),
    'hst': 764_840,
    'rlrr': LAYERS * (4 * 3 * D + (HIDDEN + D + HIDDEN) + (D + HIDDEN + D) + 2 * 2 * D) + 4 * D,
    'patt': LAYERS * (2305 * 8 + 1536),
    'prefix': LAYERS * (10 * D + D * 512 + 512 + 512 * 2 * D + 2 * D),
}
LORA_ALL = LAYERS * 8 * (3 * (D + D) + (D + D) + (D + HIDDEN) + (HIDDEN + D))
FREQFIT_COMPLEX, FREQFIT_REAL = 2_256_384, 1_138_176
#: configs named after a combination: counted per file
FILE_COUNTS = {
    'lora-freqfit_vit-b16_vtab-1k.py': LORA_ALL + FREQFIT_COMPLEX,
    'freqfit-real_vit-b16_vtab-1k.py': LORA_ALL + FREQFIT_REAL,
    'rlrr-freqfit_vit-b16_vtab-1k.py': VIT_B16_COUNTS['rlrr'] + FREQFIT_COMPLEX,
}
#: methods defined for one host only (docs/methods.md): the rest have ViT-B/16 and Swin-B
ONE_HOST = {'wst': {'vit'}, 'hst': {'vit'}, 'freqfit': {'vit'}, 'swin_bapat': {'swin'}}
SWIN_B_WIDTHS = [128] * 2 + [256] * 2 + [512] * 18 + [1024] * 2
#: Swin-BAPAT: PATT (kv, r=128) + AdaptFormer (r=64) in each of Swin-B's 24 blocks
SWIN_BAPAT = sum(d * 128 + 128 + 128 * 2 * d + 2 * d + 2 * d * 64 + 64 + d for d in SWIN_B_WIDTHS)
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
    assert VIT_B16_COUNTS['wst'] == 83_160
    assert VIT_B16_COUNTS['rlrr'] == 288_768
    assert LORA_ALL == 1_327_104 and SWIN_BAPAT == 6_201_088


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_builds_and_counts(path):
    model = _build(path)
    report = parameter_report(model)
    assert report.trainable > report.trainable_without_head  # the head trains
    name = osp.basename(path)
    if 'vit-b16' in path:
        assert report.total_without_head >= 85_798_656
        expected = FILE_COUNTS.get(name, VIT_B16_COUNTS.get(_method(path)))
        assert report.trainable_without_head == expected
    else:
        assert type(model.backbone).__name__ == 'TunedSwinTransformer'
        assert len(model.backbone.blocks) == 24
        if _method(path) == 'swin_bapat':
            assert report.trainable_without_head == SWIN_BAPAT


def test_every_baseline_has_both_hosts():
    methods = {}
    for path in CONFIGS:
        methods.setdefault(_method(path), set()).add('vit' if 'vit-b16' in path else 'swin')
    assert set(VIT_B16_COUNTS) <= set(methods)
    for method, hosts in methods.items():
        assert hosts == ONE_HOST.get(method, {'vit', 'swin'}), (method, hosts)


def test_count_params_tool_prints_table_and_json():
    config = osp.join(REPO, 'configs', 'lora', 'vit-b16_vtab-1k.py')
    table = run_tool([osp.join(TOOLS, 'count_params.py'), config], cwd=REPO).stdout
    assert 'tuner 0: LoRA' in table and '294,912' in table and 'head' in table
    out = run_tool([osp.join(TOOLS, 'count_params.py'), config, '--json'], cwd=REPO).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report['trainable_without_head'] == 294_912
    assert report['trainable'] == 294_912 + 768 * 100 + 100
    assert report['total'] > 85_798_656
