"""Adapter-only checkpoints: train, test with the frozen base read back, merge."""

import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.helpers import REPO, TOOLS, run_tool, tiny_digits_options
from tests.training_logs import SCORED_METRICS, last_validation, write_scored_config

CONFIG = osp.join(REPO, 'configs', 'demo', 'digits_vit_tiny_lora.py')
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trained(digits_root, random_base, tmp_path_factory):
    base = tmp_path_factory.mktemp('tuned')
    pretrained, state = random_base['path'], random_base['state']
    work_dir = base / 'work'
    # CONFIG, validated with the accuracy and the mAP of the scores
    config = write_scored_config(base / 'lora_scored.py', CONFIG)
    options = [
        *tiny_digits_options(digits_root, epochs=1),
        f'model.backbone.pretrained={pretrained}',
    ]
    proc = run_tool(
        [
            osp.join(TOOLS, 'train.py'),
            config,
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            *options,
        ],
        cwd=REPO,
    )
    return dict(
        base=base,
        config=config,
        pretrained=pretrained,
        state=state,
        work_dir=work_dir,
        options=options,
        log=proc.stdout + proc.stderr,
    )


def test_checkpoint_holds_only_what_was_trained(trained):
    checkpoint = torch.load(trained['work_dir'] / 'epoch_1.pth', weights_only=True)
    keys = set(checkpoint['state_dict'])
    assert keys and all(k.startswith(('backbone.tuners.', 'head.')) for k in keys), keys
    assert any(k.startswith('backbone.tuners.0.lora_A') for k in keys)
    assert 'optimizer' in checkpoint
    assert 'tuner 0: LoRA' in trained['log'] and 'tuner 1: SSF' in trained['log']


def test_test_tool_reads_the_frozen_base_back(trained, tmp_path):
    out = tmp_path / 'metrics.json'
    run_tool(
        [
            osp.join(TOOLS, 'test.py'),
            trained['config'],
            str(trained['work_dir'] / 'epoch_1.pth'),
            '--work-dir',
            str(tmp_path),
            '--out',
            str(out),
            '--cfg-options',
            *trained['options'],
        ],
        cwd=REPO,
    )
    # the training's validation after its last epoch saw the trained model on the same
    # images (test_dataloader is val_dataloader), at the same thread count: the test tool
    # gives its figures to the last digit only if it rebuilt that model from the
    # checkpoint and the frozen base
    validated = last_validation(trained['work_dir'], 'accuracy/top1')
    assert validated['step'] == 1, validated
    tested = json.loads(out.read_text())
    assert tested == {k: validated[k] for k in SCORED_METRICS}, validated


def test_missing_pretrained_file_is_named(trained, tmp_path):
    missing = tmp_path / 'moved_away.pth'
    options = [o for o in trained['options'] if not o.startswith('model.backbone.pretrained')]
    proc = run_tool(
        [
            osp.join(TOOLS, 'test.py'),
            CONFIG,
            str(trained['work_dir'] / 'epoch_1.pth'),
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            *options,
            f'model.backbone.pretrained={missing}',
        ],
        cwd=REPO,
        check=False,
    )
    assert proc.returncode != 0
    assert f"pretrained weights '{missing}' not found" in proc.stderr


def test_merged_checkpoint_is_a_plain_mmpretrain_model(trained, tmp_path):
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    import mmwst  # noqa: F401

    merged = tmp_path / 'merged.pth'
    run_tool(
        [
            osp.join(TOOLS, 'merge_tuners.py'),
            CONFIG,
            str(trained['work_dir'] / 'epoch_1.pth'),
            str(merged),
            '--cfg-options',
            *trained['options'],
        ],
        cwd=REPO,
    )
    checkpoint = torch.load(merged, weights_only=True)
    plain_cfg = Config.fromstring(checkpoint['meta']['config'], file_format='.py')
    assert plain_cfg.model.backbone.type == 'VisionTransformer'
    assert not any('tuners' in k for k in checkpoint['state_dict'])

    init_default_scope('mmpretrain')
    plain = MODELS.build(plain_cfg.model).eval()
    plain.load_state_dict(checkpoint['state_dict'], strict=True)
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.pretrained = str(trained['pretrained'])
    tuned = MODELS.build(cfg.model).eval()
    load_checkpoint(tuned, str(trained['work_dir'] / 'epoch_1.pth'), strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = tuned(x, mode='tensor')
        torch.testing.assert_close(plain(x, mode='tensor'), expected, rtol=1e-4, atol=1e-5)
        # the frozen base really came from the pretrained file
        torch.testing.assert_close(tuned.backbone.pos_embed, trained['state']['backbone.pos_embed'])
