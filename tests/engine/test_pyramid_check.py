"""A dense model whose neck or heads do not fit its backbone's pyramid fails before work."""

import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmwst.engine import PyramidMismatchError, check_pyramid
from tests.helpers import REPO

DET = osp.join(REPO, 'configs', 'demo', 'shapes_cascade_mask_rcnn.py')
SEG = osp.join(REPO, 'configs', 'demo', 'shapes_upernet.py')
SFP = osp.join(REPO, 'configs', 'dense', 'lora_sfp_coco.py')
TINY_VIT = dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)


def _build(path, scope, **options):
    init_default_scope(scope)
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def test_the_demo_models_fit_their_backbone():
    check_pyramid(_build(DET, 'mmdet'))
    check_pyramid(_build(SEG, 'mmseg'))


def test_a_neck_of_other_widths_is_named_with_the_fix():
    model = _build(DET, 'mmdet', **{'model.neck.in_channels': [32, 48, 64, 128]})
    with pytest.raises(PyramidMismatchError, match=r'in_channels=\[64, 128, 64, 96\]'):
        check_pyramid(model)


def test_heads_reading_other_widths_are_named_with_the_fix():
    model = _build(SEG, 'mmseg', **{'model.auxiliary_head.in_channels': 48})
    with pytest.raises(PyramidMismatchError, match='auxiliary_head.*set its in_channels=64'):
        check_pyramid(model)


def test_anchors_at_other_strides_are_refused():
    strides = [8, 16, 32, 64, 128]
    model = _build(DET, 'mmdet', **{'model.rpn_head.anchor_generator.strides': strides})
    with pytest.raises(PyramidMismatchError, match='anchors sit at strides'):
        check_pyramid(model)


def test_a_simple_pyramid_on_a_patch_8_vit_must_say_its_stride():
    options = {
        'model.backbone.arch': TINY_VIT,
        'model.backbone.pretrained': None,
        'model.backbone.img_size': 64,
        'model.backbone.patch_size': 8,
        'model.neck': [
            dict(type='mmwst.SimpleFeaturePyramid', in_channels=64),
            dict(type='FPN', in_channels=[16, 32, 64, 64], out_channels=32, num_outs=5),
        ],
    }
    model = _build(SFP, 'mmdet', **options)
    with pytest.raises(PyramidMismatchError, match='in_stride=8 in the neck config'):
        check_pyramid(model)
    options['model.neck'][0]['in_stride'] = 8  # now strides 2 / 4 / 8 / 16 ...
    model = _build(SFP, 'mmdet', **options)
    with pytest.raises(PyramidMismatchError, match='anchors sit at strides'):  # ... not 4-32
        check_pyramid(model)
