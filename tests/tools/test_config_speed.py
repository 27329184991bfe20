"""tools/config_speed.py (the whole detector and segmentor timed from their configs) and
the torchvision stand-in for mmcv's compiled operators that lets it run on a GPU machine
without mmcv's CUDA build (tools/gpu/mmcv_ext_torchvision.py)."""

from __future__ import annotations

import importlib.util
import os.path as osp
import sys

import pytest
import torch

from tests.helpers import REPO, TOOLS

if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import config_speed  # noqa: E402


def _standin():
    path = osp.join(REPO, 'tools', 'gpu', 'mmcv_ext_torchvision.py')
    spec = importlib.util.spec_from_file_location('mmcv_ext_standin', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_standin_roi_align_equals_mmcv(aligned, sampling_ratio):
    """RoIAlign through the stand-in: the values and the input gradient of mmcv's
    compiled CPU operator, through mmcv's own autograd function."""
    from mmcv.ops.roi_align import RoIAlignFunction, ext_module

    module = sys.modules['mmcv.ops.roi_align']  # (mmcv.ops.roi_align is also a function)

    standin = _standin()
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 23, 31, generator=gen, dtype=torch.float64)
    corners = torch.rand(12, 4, generator=gen, dtype=torch.float64) * torch.tensor([60, 40] * 2)
    boxes = torch.cat(
        [corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:])], 1
    )
    rois = torch.cat([torch.randint(0, 2, (12, 1), generator=gen).double(), boxes], 1)
    grad = torch.randn(12, 5, 7, 7, generator=gen, dtype=torch.float64)
    args = ((7, 7), 0.5, sampling_ratio, 'avg', aligned)
    results = []
    for ext in (ext_module, standin):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(module, 'ext_module', ext)
            x = feats.float().clone().requires_grad_()
            out = RoIAlignFunction.apply(x, rois.float(), *args)
            out.backward(grad.float())
        results.append((out.detach(), x.grad))
    (out_mmcv, grad_mmcv), (out_tv, grad_tv) = results
    assert out_mmcv.abs().sum() > 0 and grad_mmcv.abs().sum() > 0
    torch.testing.assert_close(out_tv, out_mmcv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_tv, grad_mmcv, rtol=1e-5, atol=1e-5)


def test_standin_nms_keeps_what_mmcv_keeps():
    from mmcv.ops import nms

    standin = _standin()
    gen = torch.Generator().manual_seed(1)
    xy = torch.rand(200, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=gen) * 30], 1)
    scores = torch.rand(200, generator=gen)
    dets, keep = nms(boxes, scores, 0.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules['mmcv.ops.nms'], 'ext_module', standin)
        dets_tv, keep_tv = nms(boxes, scores, 0.5)
        half = nms(boxes.half(), scores.to(torch.bfloat16), 0.5)[1]  # any precision
    assert 20 < len(keep) < 200  # some boxes suppressed, some kept
    assert torch.equal(keep_tv, keep) and torch.equal(dets_tv, dets)
    assert half.dtype == torch.int64 and 20 < len(half) < 200
    with pytest.raises(NotImplementedError, match='offset=1'):
        standin.nms(boxes, scores, 0.5, offset=1)


def test_standin_refuses_every_other_operator_by_name():
    standin = _standin()
    assert hasattr(standin, 'deform_conv_forward')  # so that mmcv.ops imports
    with pytest.raises(NotImplementedError, match="'deform_conv_forward' is not provided"):
        standin.deform_conv_forward(torch.zeros(1))
    with pytest.raises(NotImplementedError, match='max pooling'):
        standin.roi_align_forward(*[None] * 5, 7, 7, 1.0, 0, 0, True)


def test_schedules_follow_the_configs():
    """COCO 3x: 36 epochs of 118,287 images at 8 GPUs x 2; ADE20K: the loop's 160k."""
    coco = config_speed.load_config('configs/wst_coco.py', False)
    assert config_speed.schedule_iterations(coco, 8) == (
        266_146,
        '36 epochs x 118,287 images / 16 per iteration',
    )
    assert config_speed.schedule_iterations(coco, 16)[0] == 266_146  # the total batch is 16
    ade = config_speed.load_config('configs/wst_ade20k.py', False)
    assert config_speed.schedule_iterations(ade, 8) == (160_000, '160,000 iterations')
    # the recipes' total batch of 16, shared by the GPUs
    assert config_speed.batch_per_gpu(coco, 8) == config_speed.batch_per_gpu(ade, 8) == 2
    assert config_speed.batch_per_gpu(ade, 4) == 4
    with pytest.raises(ValueError, match='total batch of 16'):
        config_speed.batch_per_gpu(coco, 3)


def test_variants_are_the_configs_with_random_weights():
    lora = config_speed.load_config('configs/dense/lora_sfp_coco.py', False)
    assert lora.model.backbone.pretrained is None
    assert [t['type'] for t in lora.model.backbone.tuners] == ['mmwst.LoRA']
    full = config_speed.load_config('configs/dense/lora_sfp_coco.py', True, amp='fp16')
    assert full.model.backbone.tuners == [dict(type='mmwst.FullFineTune')]
    assert full.optim_wrapper.type == 'AmpOptimWrapper'
    assert full.optim_wrapper.constructor == 'mmwst.TunerOptimWrapperConstructor'
    with pytest.raises(ValueError, match='replaces the tuners of a ViT config'):
        config_speed.load_config('configs/wst_coco.py', True)


def test_bad_options_stop_before_any_model_is_built(capsys):
    for argv, message in [
        (['--device', 'cpu', '--amp', 'fp16'], 'on a GPU only'),
        (['--device', 'cpu', '--size', '100'], 'multiple of 32'),
        (['--device', 'cpu', '--iters', '0'], '--iters must be at least 1'),
    ]:
        with pytest.raises(SystemExit):
            config_speed.parse_args(argv)
        assert message in capsys.readouterr().err
    assert config_speed.parse_args(['--device', 'cpu']).amp == 'bf16'


def test_table_gives_each_model_against_full_finetuning():
    row = dict(
        suite='coco', name='a', size=1024, batch_per_gpu=2, trainable=1234, step_s=0.5,
        step_spread=0.04, peak_gib=10.0, gpus=8, schedule_iters=100, schedule_hours=1.25,
        step_vs_full=0.5, peak_vs_full=0.25,
    )  # fmt: skip
    failed = dict(suite='ade20k', name='b', error='RuntimeError: x')
    text = config_speed.table([row, failed])
    assert (
        '| coco | a | 1024 | 2 | 1,234 | 0.500 (4%) | 0.50x | 10.00 | 0.25x | 1.2 on 8 (100 it) |'
        in text
    )
    assert '| ade20k | b | failed: RuntimeError: x |' in text
