"""Every mini-VTAB config builds on the shipped backbone and takes a training step."""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.helpers import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*mini-vtab.py'), recursive=True))


def test_every_method_on_the_board_has_a_mini_vtab_config():
    """A method folder (one with ViT-B/16 VTAB-1k configs) has a mini-VTAB config exactly
    when every tuner its configs use says it is on the board (``on_board`` in its class)."""
    from mmpretrain.registry import MODELS

    import mmwst  # noqa: F401

    on_board = {}
    for path in glob.glob(osp.join(REPO, 'configs', '*', '*vit-b16*vtab-1k.py')):
        folder = osp.basename(osp.dirname(path))
        tuners = Config.fromfile(path).model.backbone.tuners
        flags = [MODELS.get(t['type']).on_board for t in tuners]
        on_board[folder] = on_board.get(folder, True) and all(flags)
    with_config = {osp.basename(osp.dirname(p)) for p in CONFIGS}
    assert {'lora', 'hst', 'freqfit'} <= set(on_board)
    for folder, expected in on_board.items():
        assert (folder in with_config) == expected, (folder, expected)
    # besides the methods' folders: the dense backbone's variants (configs/dense/mini_vtab)
    assert with_config - set(on_board) == {'mini_vtab'}


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO)[8:-3])
def test_config_builds_and_trains_a_step(path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmwst.weights import shipped_vit

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(path)
    assert cfg.board_name and cfg.optim_wrapper.optimizer.lr > 0
    assert cfg.train_dataloader.dataset.split == 'train800val200'
    assert cfg.test_dataloader.dataset.split == 'test'  # scored once, on the test split
    random_row = 'random' in osp.basename(path)
    assert cfg.model.backbone.pretrained == (None if random_row else shipped_vit())
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    from mmpretrain.structures import DataSample

    samples = [DataSample().set_gt_label(i) for i in range(4)]
    batch = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), True)
    loss, _ = model.parse_losses(model(**batch, mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    trained = {n: p for n, p in model.backbone.named_parameters() if p.requires_grad}
    if 'linear_probe' in path:
        assert not trained
    else:
        # the classifier pools the last map: the WST pyramid's finest map goes unused
        unused = {'pyramid.up.weight', 'pyramid.up.bias'} if 'wst-only' in path else set()
        assert trained and {n for n, p in trained.items() if p.grad is None} == unused
    frozen = [p for p in model.backbone.parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)
