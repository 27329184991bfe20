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

#: the ViT-B/16 counts the papers and docs/methods.md state: independent anchors for the
#: count formula each tuner states in its own file (which the configs are checked against)
PUBLISHED = {
    'linear_probe': 0,
    'full_finetune': 85_798_656,
    'bitfit': 102_912,
    'ln_tune': 38_400,
    'ssf': 205_824,
    'lora': 294_912,
    'dora': 313_344,
    'adapter': 313_536,
    'adaptformer': 1_189_632,
    'vpt-shallow': 7_680,
    'vpt-deep': 92_160,
    'wst': 83_160,
    'hst': 764_840,
    'rlrr': 288_768,
    'patt': 239_712,
    'prefix': 14_272_512,
    'mona': 2_684_928,
}
#: configs named after a combination: counted per file (LoRA on all six Linears + FreqFit)
FILE_COUNTS = {
    'lora-freqfit_vit-b16_vtab-1k.py': 1_327_104 + 2_256_384,
    'freqfit-real_vit-b16_vtab-1k.py': 1_327_104 + 1_138_176,
    'rlrr-freqfit_vit-b16_vtab-1k.py': 288_768 + 2_256_384,
    'ssf-freqfit_vit-b16_vtab-1k.py': 205_824 + 2_256_384,
    'lora-freqfit-1d_vit-b16-mae_vtab-1k.py': 1_327_104 + 1_976_832,
    'vpt-deep-freqfit-1d_vit-b16_vtab-1k.py': 92_160 + 2_076_672,
}
#: methods defined for one host only (docs/methods.md): the rest have ViT-B/16 and Swin-B
ONE_HOST = {'wst': {'vit'}, 'hst': {'vit'}, 'freqfit': {'vit'}, 'swin_bapat': {'swin'}}
SWIN_BAPAT = 6_201_088  # PATT (kv, r=128) + AdaptFormer (r=64) in Swin-B's 24 blocks
SWIN_COUNTS = {'swin_bapat': SWIN_BAPAT, 'mona': 3_667_456}  # Mona: 48 adapters, r = 64
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*vtab-1k.py')) if '_base_' not in p
)


def _method(path: str) -> str:
    folder = osp.basename(osp.dirname(path))
    return osp.basename(path).split('_')[0] if folder == 'vpt' else folder


def _build(path: str):
    init_default_scope('mmpretrain')
    return MODELS.build(Config.fromfile(path).model)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_builds_and_counts(path):
    model = _build(path)
    report = parameter_report(model)
    assert report.trainable > report.trainable_without_head  # the head trains
    name = osp.basename(path)
    backbone = model.backbone
    # the methods' own count formulas (in their tuner files) ...
    assert report.trainable_without_head == sum(t.param_count(backbone) for t in backbone.tuners)
    if 'vit-b16' in path:  # ... and the published figures
        assert report.total_without_head >= 85_798_656
        expected = FILE_COUNTS.get(name, PUBLISHED.get(_method(path)))
        if expected is not None:  # a method without a published figure: the formula alone
            assert report.trainable_without_head == expected
    else:
        assert type(model.backbone).__name__ == 'TunedSwinTransformer'
        assert len(model.backbone.blocks) == 24
        if _method(path) in SWIN_COUNTS:
            assert report.trainable_without_head == SWIN_COUNTS[_method(path)]


def test_every_baseline_has_both_hosts():
    methods = {}
    for path in CONFIGS:
        methods.setdefault(_method(path), set()).add('vit' if 'vit-b16' in path else 'swin')
    assert set(PUBLISHED) <= set(methods)
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
