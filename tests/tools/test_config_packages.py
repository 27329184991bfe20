"""``_base_ = ['mmwst::...']`` from another project's folder: mmwst's configs inherited
the way OpenMMLab's are (``mmdet::``, ``mmseg::``), under mmwst's train tool and under
mmdet's, mmseg's and mmpretrain's own train tools, which read the config before they
import anything of mmwst.

How it works (mmwst/config_lookup.py): the configs ship in ``mmwst/.mim/configs``; the
``.pth`` file installed with mmwst adds the ``mmwst`` prefix to mmengine's table when
``mmengine.config`` is imported, ``import mmwst`` adds it too; parts of a config
inherited that way are marked ``_scope_='mmwst'`` by mmengine, and mmwst's registries
resolve the host library's names there (mmwst/registry.py).
"""

import importlib.util
import json
import os.path as osp
import subprocess
import sys
import sysconfig
import textwrap
from collections import OrderedDict

import pytest
import torch

from tests.helpers import REPO, TOOLS, tool_env

pytestmark = pytest.mark.slow

# a project of its own: three configs that inherit mmwst's by package, in a folder
# outside the checkout
PROJECT_CONFIGS = {
    # the dense demos (mmseg's UperNet, mmdet's Cascade Mask R-CNN)
    'my_upernet.py': """
        _base_ = ['mmwst::demo/shapes_upernet.py']
        work_note = 'a project config'
    """,
    'my_cascade.py': """
        _base_ = ['mmwst::demo/shapes_cascade_mask_rcnn.py']
    """,
    # a VTAB-1k config (mmpretrain), its ViT-B shrunk to a tiny random one
    'my_vtab_lora.py': """
        _base_ = ['mmwst::lora/vit-b16_vtab-1k.py']
        model = dict(
            backbone=dict(
                arch=dict(
                    _delete_=True, embed_dims=64, num_layers=2, num_heads=4,
                    feedforward_channels=128,
                ),
                pretrained=None,
            ),
            head=dict(in_channels=64),
        )
    """,
}


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp('my_project')
    for name, text in PROJECT_CONFIGS.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


def _upstream_tool(package: str) -> str:
    spec = importlib.util.find_spec(package)
    return osp.join(osp.dirname(spec.origin), '.mim', 'tools', 'train.py')


def _python(code: str, cwd, *flags: str, env=None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line, returned."""
    proc = subprocess.run(
        [sys.executable, *flags, '-c', textwrap.dedent(code)],
        cwd=str(cwd),
        env=env or tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_installed_hook_adds_mmwst_when_mmengine_config_is_imported(tmp_path):
    """Nothing of mmengine or mmwst is imported at interpreter start; importing
    mmengine.config adds the prefix (and imports no mmwst), and the module keeps its
    own loader."""
    found = _python(
        """
        import json, sys
        before = sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'mmwst'))
        import mmengine.config.utils as utils
        print(json.dumps(dict(
            before=before,
            entry=utils.MODULE2PACKAGE.get('mmwst'),
            loader=type(utils.__loader__).__name__,
            spec_loader=type(utils.__spec__.loader).__name__,
            mmwst='mmwst' in sys.modules,
            hooks=[getattr(f, '__name__', '') for f in sys.meta_path],
        )))
        """,
        tmp_path,
    )
    assert found['before'] == []
    assert found['entry'] == 'mmwst.config_lookup'
    assert found['loader'] == found['spec_loader'] == 'SourceFileLoader'
    assert not found['mmwst']
    assert 'ConfigTableFinder' not in found['hooks']  # gone once it has done its work


def test_the_hook_and_the_package_name_the_same_lookup():
    import _mmwst_config_lookup as hook
    import mmwst.config_lookup as lookup

    assert (hook.PREFIX, hook.LOOKUP_NAME) == (lookup.PREFIX, lookup.LOOKUP_NAME)
    # mmengine finds mmwst's folder through that name; the configs and tools are there
    assert osp.isfile(osp.join(lookup.CONFIGS, 'demo', 'shapes_upernet.py'))
    assert osp.isfile(osp.join(lookup.TOOLS, 'train.py'))
    assert osp.isfile(osp.join(osp.dirname(lookup.CONFIGS), 'model-index.yml'))


def test_import_mmwst_registers_the_prefix_and_nothing_else(project, digits_root):
    """Without the .pth file (``python -S``: a checkout on PYTHONPATH), ``import mmwst``
    adds mmwst's entry to mmengine's table - only that - and Config.fromfile reads an
    ``mmwst::`` base."""
    site = sysconfig.get_paths()['purelib']
    env = tool_env(PYTHONPATH=REPO + ':' + site, VTAB_ROOT=osp.dirname(digits_root))
    found = _python(
        """
        import json, sys
        import mmengine.config.utils as utils
        table = dict(utils.MODULE2PACKAGE)
        meta_path = list(sys.meta_path)
        import mmwst
        added = {k: v for k, v in utils.MODULE2PACKAGE.items() if table.get(k) != v}
        from mmengine.config import Config
        cfg = Config.fromfile('my_vtab_lora.py')
        print(json.dumps(dict(
            hooked='mmwst' in table,
            added=added,
            removed=sorted(set(table) - set(utils.MODULE2PACKAGE)),
            # finders mmwst added (the libraries it imports add their own)
            finders=[
                repr(f) for f in sys.meta_path
                if f not in meta_path and 'mmwst' in getattr(f, '__module__', '')
            ],
            mmwst=mmwst.__file__,
            tuners=cfg.model.backbone.tuners,
            dataset=cfg.train_dataloader.dataset.type,
            width=cfg.model.backbone.arch.embed_dims,
        )))
        """,
        project,
        '-S',
        env=env,
    )
    assert not found['hooked']  # no .pth file ran
    assert found['added'] == {'mmwst': 'mmwst.config_lookup'} and not found['removed']
    assert found['finders'] == []
    assert found['mmwst'] == osp.join(REPO, 'mmwst', '__init__.py')
    assert found['tuners'] == [dict(type='mmwst.LoRA', rank=8, alpha=8, targets=['q', 'v'])]
    assert found['dataset'] == 'mmwst.VTAB1k' and found['width'] == 64


def test_mmwst_scope_resolves_the_host_librarys_names(monkeypatch):
    """Under ``_scope_='mmwst'`` (an inherited part), a host name is the host's - mmseg's
    LoadAnnotations, not mmcv's of the same name - and mmwst's own names are mmwst's;
    without a host scope, mmengine's rules apply unchanged."""
    from mmengine.registry import MODELS, TRANSFORMS, DefaultScope

    import mmwst  # noqa: F401
    from mmwst.models import TunedVisionTransformer

    with DefaultScope.overwrite_default_scope('mmseg'):
        annotations = TRANSFORMS.build(dict(type='LoadAnnotations', _scope_='mmwst'))
        host = MODELS.build(
            dict(
                type='TunedVisionTransformer',
                _scope_='mmwst',
                arch=dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
                img_size=32,
                patch_size=8,
            )
        )
    assert type(annotations).__module__.startswith('mmseg.')
    assert isinstance(host, TunedVisionTransformer)
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())  # no scope at all
    # without a host, mmengine's own rules: the root registry's class, or none
    plain = TRANSFORMS.build(dict(type='LoadAnnotations', _scope_='mmwst'))
    assert type(plain).__module__.startswith('mmcv.')
    with pytest.raises(KeyError, match='PackSegInputs is not in the mmwst::transform'):
        TRANSFORMS.build(dict(type='PackSegInputs', _scope_='mmwst'))


# (tool, config, environment, --cfg-options): a step or two of training, then validation
def _runs(shapes_root, digits_root):
    shapes = dict(SHAPES_ROOT=shapes_root)
    vtab = dict(VTAB_TASK='digits', VTAB_ROOT=osp.dirname(digits_root))
    few_images = [
        'train_dataloader.dataset.indices=4',
        'train_dataloader.batch_size=2',
        'val_dataloader.dataset.indices=2',
    ]
    vtab_options = [
        'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=8',
        'train_dataloader.batch_size=4',
        'val_dataloader.dataset.indices=8',
        'test_dataloader.dataset.indices=8',
    ]
    return {
        'mmwst': (osp.join(TOOLS, 'train.py'), 'my_vtab_lora.py', vtab, vtab_options),
        'mmpretrain': (_upstream_tool('mmpretrain'), 'my_vtab_lora.py', vtab, vtab_options),
        'mmseg': (
            _upstream_tool('mmseg'),
            'my_upernet.py',
            shapes,
            [*few_images, 'train_cfg.max_iters=2', 'train_cfg.val_interval=2'],
        ),
        'mmdet': (
            _upstream_tool('mmdet'),
            'my_cascade.py',
            shapes,
            [
                # the detector's training images sit inside the copy-paste wrapper
                'train_dataloader.dataset.dataset.indices=4',
                *few_images[1:],
                'train_cfg.max_epochs=1',
                'train_cfg.val_interval=1',
            ],
        ),
    }


TOOL_NAMES = ('mmwst', 'mmpretrain', 'mmseg', 'mmdet')


@pytest.fixture(scope='module')
def trainings(project, shapes_root, digits_root):
    """The four trainings, started together (one thread each); each test waits for its
    own. Returns tool -> (config, work dir, process); the output goes to
    ``<tool>.log`` beside the work dir."""
    started = {}
    for tool, (script, config, env, options) in _runs(shapes_root, digits_root).items():
        work = project / f'work_{tool}'
        cmd = [sys.executable, script, config, '--work-dir', str(work), '--cfg-options', *options]
        with open(project / f'{tool}.log', 'w') as log:
            proc = subprocess.Popen(
                cmd, cwd=str(project), env=tool_env(**env), stdout=log, stderr=subprocess.STDOUT
            )
        started[tool] = (config, work, proc)
    yield started
    for _, _, proc in started.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize('tool', TOOL_NAMES)
def test_train_tools_train_a_project_config_that_inherits_mmwst(tool, trainings):
    config, work, proc = trainings[tool]
    if proc.wait(timeout=600) != 0:
        log = (work.parent / f'{tool}.log').read_text()
        raise AssertionError(f'the {tool} train tool failed:\n{log[-6000:]}')
    (checkpoint,) = work.glob('*.pth')
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    dumped = (work / config).read_text()  # the merged config the run used
    if config == 'my_vtab_lora.py':
        assert any('lora_A' in k for k in state)  # the tuner of the inherited config
        assert "type='mmwst.VTAB1k'" in dumped and 'embed_dims=64' in dumped
    else:
        assert any(k.startswith('backbone.wst.') for k in state)  # the dense backbone
        assert "type='mmwst.DenseTunedViT'" in dumped
    if config == 'my_upernet.py':
        assert "work_note = 'a project config'" in dumped
    validations = [
        json.loads(line)
        for path in work.glob('*/vis_data/scalars.json')
        for line in path.read_text().splitlines()
        if 'step' in line
    ]
    metric = {'my_vtab_lora.py': 'accuracy/top1', 'my_upernet.py': 'mIoU'}
    key = metric.get(config, 'coco/bbox_mAP')
    assert any(key in record for record in validations), validations
