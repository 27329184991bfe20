"""A real install: the source distribution, a wheel built from it and installed (not
editable) into a fresh virtual environment, then used from a folder outside the
checkout as README.md's "Installing" and "Using mmwst from another project" say.

The new environment sees the installed stack (torch, mmengine, ...) through a path
entry, so nothing is downloaded; mmwst itself comes only from the wheel.
"""

import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

#: What a source distribution is made from (the rest of the checkout is not needed).
SOURCES = (
    'setup.py',
    'MANIFEST.in',
    'README.md',
    '_mmwst_config_lookup.py',
    'requirements',
    'mmwst',
    'configs',
    'tools',
)


def _run(cmd, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f'{" ".join(map(str, cmd))} exited with {proc.returncode}\n'
        f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    )
    return proc


def _clean_env(**extra) -> dict:
    """No PYTHONPATH (the checkout must not be importable), one thread, offline pip."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(OMP_NUM_THREADS='1', PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.update(extra)
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp('install')
    src = base / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', 'build', 'dist')
    for name in SOURCES:
        source = osp.join(REPO, name)
        if osp.isdir(source):
            shutil.copytree(source, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, src / name)
    env = _clean_env()
    _run([sys.executable, 'setup.py', '-q', 'sdist', '--dist-dir', base / 'dist'], src, env)
    (sdist,) = (base / 'dist').glob('mmwst-*.tar.gz')
    _run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index']
        + ['--wheel-dir', base / 'wheels', sdist],
        base,
        env,
    )
    (wheel,) = (base / 'wheels').glob('mmwst-*.whl')

    venv = base / 'venv'
    _run([sys._base_executable, '-m', 'venv', '--without-pip', venv], base, env)
    python = venv / 'bin' / 'python'
    site = _run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], base)
    site = site.stdout.strip()
    with open(osp.join(site, '_stack.pth'), 'w') as f:  # torch, mmengine, ... and pip
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    _run(
        [python, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed', wheel],
        base,
        env,
    )
    outside = base / 'my_project'
    outside.mkdir()
    return dict(base=base, sdist=sdist, wheel=wheel, python=python, site=site, outside=outside)


def test_the_sdist_holds_what_the_build_needs(installed):
    with tarfile.open(installed['sdist']) as tar:
        names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
        links = [m.name for m in tar.getmembers() if m.issym()]
    for needed in (
        'setup.py',
        'requirements/runtime.txt',
        '_mmwst_config_lookup.py',
        'configs/demo/shapes_upernet.py',
        'tools/train.py',
        'mmwst/.mim/model-index.yml',
        'mmwst/weights/vit-t-p8_fractaldb.safetensors',
    ):
        assert needed in names, needed
    assert not links  # the checkout's links are not shipped
    assert not any(n.startswith(('mmwst/.mim/configs', 'mmwst/.mim/tools')) for n in names)


def test_the_installed_package_holds_configs_weights_cards_and_the_hook(installed):
    found = json.loads(
        _run(
            [
                installed['python'],
                '-c',
                textwrap.dedent(
                    """
                    import json, os, sys
                    import mmengine.config.utils as utils
                    entry = utils.MODULE2PACKAGE.get('mmwst')
                    import mmwst
                    from mmwst.config_lookup import CONFIGS, TOOLS
                    from mmwst.weights import shipped_vit, shipped_vit_card
                    print(json.dumps(dict(
                        entry=entry, mmwst=mmwst.__file__, configs=CONFIGS, tools=TOOLS,
                        weights=shipped_vit(), card=shipped_vit_card(),
                    )))
                    """
                ),
            ],
            installed['outside'],
            _clean_env(),
        ).stdout.splitlines()[-1]
    )
    site = installed['site']
    assert found['entry'] == 'mmwst.config_lookup'  # the .pth hook, before import mmwst
    assert found['mmwst'] == osp.join(site, 'mmwst', '__init__.py')  # the wheel's, not REPO
    assert found['configs'] == osp.join(site, 'mmwst', '.mim', 'configs')
    for folder, sources in ((found['configs'], 'configs'), (found['tools'], 'tools')):
        assert not osp.islink(folder)
        for root, _, files in os.walk(osp.join(REPO, sources)):
            for name in files:
                if name.endswith(('.py', '.sh', '.md')) and '__pycache__' not in root:
                    relative = osp.relpath(osp.join(root, name), osp.join(REPO, sources))
                    assert osp.isfile(osp.join(folder, relative)), relative
    assert osp.isfile(osp.join(site, 'mmwst', '.mim', 'model-index.yml'))
    assert osp.isfile(osp.join(site, 'mmwst-config-lookup.pth'))
    assert osp.isfile(osp.join(site, '_mmwst_config_lookup.py'))
    with open(found['weights'], 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == found['card']['sha256']
    assert found['weights'].startswith(site)


def test_a_project_outside_the_checkout_trains_with_the_installed_tools(
    installed, digits_root, random_base
):
    """README: a config of one's own that inherits mmwst's, trained with the train tool
    that ships in the package."""
    outside = installed['outside']
    (outside / 'my_lora.py').write_text(
        "_base_ = ['mmwst::demo/digits_vit_tiny_lora.py']\n"
        f'model = dict(backbone=dict(pretrained={str(random_base["path"])!r}))\n'
    )
    env = _clean_env(VTAB_TASK='digits', VTAB_ROOT=osp.dirname(digits_root))
    tools = _run(
        [installed['python'], '-c', 'import mmwst.config_lookup as c; print(c.TOOLS)'],
        outside,
        env,
    ).stdout.splitlines()[-1]
    assert tools.startswith(installed['site'])
    _run(
        [installed['python'], osp.join(tools, 'train.py'), 'my_lora.py', '--work-dir', 'run']
        + ['--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=16']
        + ['val_dataloader.dataset.indices=16', 'test_dataloader.dataset.indices=16'],
        outside,
        env,
    )
    assert (outside / 'run' / 'epoch_1.pth').is_file()
    dumped = (outside / 'run' / 'my_lora.py').read_text()
    assert "type='mmwst.LoRA'" in dumped and "type='mmwst.SSF'" in dumped
