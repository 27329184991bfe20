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

#: folders whose configs combine methods on one host by definition (not every host their
#: tuners support): Swin-BAPAT is Swin-B with PATT and a parallel adapter
DEFINED_ON = {'swin_bapat': {'swin'}}
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
    # ... and the figure the paper and docs/methods.md state, which the config carries
    # (an independent anchor; a method without a published figure: the formula alone)
    published = Config.fromfile(path).get('trainable_without_head')
    if published is not None:
        assert report.trainable_without_head == published
    if 'vit-b16' in path:
        assert report.total_without_head >= 85_798_656
        assert published is not None, f'{name}: state the ViT-B/16 count as trainable_without_head'
    else:
        assert type(model.backbone).__name__ == 'TunedSwinTransformer'
        assert len(model.backbone.blocks) == 24


def test_every_method_has_a_config_for_every_host_it_supports():
    """A ViT-B/16 and a Swin-B config per method folder, or the ViT one alone where a
    tuner it uses supports no Swin (``supported_hosts`` in its class: WST, HST, FreqFit)."""
    hosts, types = {}, {}
    for path in CONFIGS:
        folder = osp.basename(osp.dirname(path))
        hosts.setdefault(folder, set()).add('vit' if 'vit-b16' in path else 'swin')
        tuners = Config.fromfile(path).model.backbone.tuners
        types.setdefault(folder, set()).update(t['type'] for t in tuners)
    for folder, found in hosts.items():
        supported = {'vit', 'swin'}
        for name in types[folder]:
            supported &= set(MODELS.get(name).supported_hosts)
        assert found == DEFINED_ON.get(folder, supported), (folder, found)


def test_count_params_tool_prints_table_and_json():
    config = osp.join(REPO, 'configs', 'lora', 'vit-b16_vtab-1k.py')
    table = run_tool([osp.join(TOOLS, 'count_params.py'), config], cwd=REPO).stdout
    assert 'tuner 0: LoRA' in table and '294,912' in table and 'head' in table
    out = run_tool([osp.join(TOOLS, 'count_params.py'), config, '--json'], cwd=REPO).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report['trainable_without_head'] == 294_912
    assert report['trainable'] == 294_912 + 768 * 100 + 100
    assert report['total'] > 85_798_656
