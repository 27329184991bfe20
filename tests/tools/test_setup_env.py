"""tools/setup_env.sh's modes, checked without a GPU: which torch is kept, which packages
are installed around it, how mmcv is compiled, and the refusals that come before any of it.
"""

import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.helpers import REPO, TOOLS

_spec = importlib.util.spec_from_file_location('_setup_stack', osp.join(TOOLS, '_setup_stack.py'))
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)

PINS = [
    ('torch', '2.11.0'),
    ('torchvision', '0.26.0'),
    ('nvidia-cublas', '13.1.0.3'),
    ('triton', '3.6.0'),
    ('numpy', '1.26.4'),
    ('opencv-python', '4.11.0.86'),
    ('mmengine', '0.10.7'),
    ('mmcv', '2.1.0'),
    ('PyWavelets', '1.9.0'),
    ('addict', '2.4.0'),
]


def test_pinned_plan_is_the_whole_lock_but_mmcv():
    assert stack.plan('pinned', PINS, {}) == [f'{n}=={v}' for n, v in PINS if n != 'mmcv']


def test_system_plan_keeps_torch_and_what_is_there():
    installed = {
        'torch': '2.5.1',
        'numpy': '2.1.0',
        'opencv-python-headless': '4.10.0',
        'mmengine': '0.10.4',
        'PyWavelets': '1.9.0',
    }
    # torch family and mmcv never; numpy and OpenCV kept (headless stands for
    # opencv-python); mmengine replaced by the tested version; addict missing
    assert stack.plan('system', PINS, installed) == ['mmengine==0.10.7', 'addict==2.4.0']
    assert stack.plan('active', PINS, installed) == stack.plan('system', PINS, installed)
    without_cv = {k: v for k, v in installed.items() if not k.startswith('opencv')}
    assert 'opencv-python==4.11.0.86' in stack.plan('system', PINS, without_cv)
    with pytest.raises(ValueError, match='MMWST_TORCH=.*pinned, system, active'):
        stack.plan('conda', PINS, installed)


def test_the_real_lock_reads_for_this_interpreter():
    pins = dict(stack.read_lock(osp.join(REPO, 'requirements', 'lock.txt')))
    assert pins['mmcv'] == '2.1.0' and pins['torch'] == '2.11.0'
    assert len({stack.canonical(n) for n in pins}) == len(pins)  # one version each


def test_torch_outside_the_supported_range_is_refused_with_the_range():
    spec = stack.runtime_range('torch')
    assert spec == '>=2.4,<2.12'
    assert stack.torch_problem('2.11.0+cu130', '13.0', spec) is None
    assert stack.torch_problem('2.4.0', None, spec) is None
    message = stack.torch_problem('2.2.0+cu121', '12.1', spec)
    assert 'torch 2.2.0+cu121 is outside the range mmwst supports (>=2.4,<2.12' in message
    assert 'torch 2.12.0 is outside' in stack.torch_problem('2.12.0', None, spec)
    assert 'has no torch' in stack.torch_problem(None, None, spec)


def _build(caps, nvcc='/opt/cuda-test/bin/nvcc', nvcc_version='13.0', cuda='13.0', **env):
    return stack.mmcv_build('2.11.0+cu130', 'cp312', cuda, caps, nvcc, nvcc_version, env)


def test_mmcv_build_without_a_gpu_compiles_cpu_ops():
    assert _build([], nvcc=None) == dict(KEY='torch2.11.0+cu130-cp312-cpu', FORCE_CUDA='0')
    # a GPU, but CPU ops asked for
    assert _build([(9, 0)], nvcc=None, FORCE_CUDA='0')['FORCE_CUDA'] == '0'


def test_mmcv_build_for_the_visible_gpus_only():
    build = _build([(9, 0), (9, 0)])
    assert build['TORCH_CUDA_ARCH_LIST'] == '9.0'
    assert build['KEY'] == 'torch2.11.0+cu130-cp312-cuda13.0-sm90'
    assert build['FORCE_CUDA'] == '1' and build['CUDA_HOME'] == '/opt/cuda-test'
    mixed = _build([(9, 0), (8, 0)])
    assert mixed['TORCH_CUDA_ARCH_LIST'] == '8.0;9.0' and mixed['KEY'].endswith('-sm80_90')
    # an explicit list wins, and is part of the cache key
    chosen = _build([(9, 0)], TORCH_CUDA_ARCH_LIST='8.0;9.0+PTX')
    assert chosen['TORCH_CUDA_ARCH_LIST'] == '8.0;9.0+PTX'
    assert chosen['KEY'].endswith('-sm80_90ptx')


def test_mmcv_build_refuses_a_gpu_without_nvcc_or_with_another_cuda():
    with pytest.raises(RuntimeError, match='nvcc .* was not found.*CUDA 13.0 toolkit'):
        _build([(9, 0)], nvcc=None)
    with pytest.raises(RuntimeError, match='CUDA 12.4 but torch was built with CUDA 13.0'):
        _build([(9, 0)], nvcc_version='12.4')
    with pytest.raises(RuntimeError, match='torch 2.11.0.cu130 is a CPU build'):
        _build([], cuda=None, FORCE_CUDA='1')
    with pytest.raises(RuntimeError, match='set TORCH_CUDA_ARCH_LIST'):
        _build([], FORCE_CUDA='1')


def _fake_torch(root, version, gpu):
    pkg = osp.join(root, 'torch')
    os.makedirs(pkg)
    with open(osp.join(pkg, '__init__.py'), 'w') as f:
        f.write(
            f'__version__ = {version!r}\n'
            'class version:\n'
            "    cuda = '13.0'\n"
            'class cuda:\n'
            f'    is_available = staticmethod(lambda: {gpu})\n'
            '    device_count = staticmethod(lambda: 1)\n'
            '    get_device_capability = staticmethod(lambda i=0: (9, 0))\n'
        )


def _setup(tmp_path, mode, torch_version, gpu):
    fake = str(tmp_path / 'site')
    _fake_torch(fake, torch_version, gpu)
    nvcc_free = os.pathsep.join(
        p for p in os.environ['PATH'].split(os.pathsep) if not osp.isfile(osp.join(p, 'nvcc'))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(('MMWST_', 'CUDA_', 'FORCE_'))}
    env.update(
        PATH=nvcc_free,
        PYTHONPATH=fake,
        PYTHON=sys.executable,
        MMWST_TORCH=mode,
        MMWST_CACHE=str(tmp_path / 'cache'),
        MMWST_VENV=str(tmp_path / 'venv'),
    )
    return subprocess.run(
        ['bash', osp.join(TOOLS, 'setup_env.sh')],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_setup_refuses_an_unsupported_torch_before_installing_anything(tmp_path):
    proc = _setup(tmp_path, 'active', '2.2.0', gpu=False)
    assert proc.returncode != 0
    assert 'torch 2.2.0 is outside the range mmwst supports (>=2.4,<2.12' in proc.stderr
    assert 'MMWST_TORCH=active cannot keep the torch' in proc.stderr
    assert not (tmp_path / 'cache').exists() and not (tmp_path / 'venv').exists()


def test_setup_refuses_a_gpu_without_nvcc_before_installing_anything(tmp_path):
    proc = _setup(tmp_path, 'active', '2.11.0+cu130', gpu=True)
    assert proc.returncode != 0
    assert 'nvcc (the CUDA compiler) was not found' in proc.stderr
    assert 'FORCE_CUDA=0' in proc.stderr
    assert 'installing' not in proc.stderr  # no pip run
    assert not list((tmp_path / 'cache').glob('*.stamp'))


def test_setup_rejects_an_unknown_mode_and_a_missing_wheelhouse(tmp_path):
    proc = _setup(tmp_path, 'conda', '2.11.0', gpu=False)
    assert proc.returncode != 0 and 'MMWST_TORCH=conda: choose pinned' in proc.stderr
    env = dict(os.environ, MMWST_WHEELHOUSE=str(tmp_path / 'nowhere'))
    proc = subprocess.run(
        ['bash', osp.join(TOOLS, 'setup_env.sh')], env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and 'is not a folder' in proc.stderr


def test_wheelhouse_holds_what_the_target_lacks_plus_the_tested_and_build_packages():
    pins = [*PINS, ('setuptools', '80.10.2')]
    have = {'numpy', 'opencv-python-headless', 'mmengine', 'setuptools', 'torch', 'addict'}
    assert stack.wheelhouse(pins, have) == [
        'mmengine==0.10.7',  # tested version, whatever the target has
        'mmcv==2.1.0',  # source, compiled there
        'PyWavelets==1.9.0',
        'setuptools==80.10.2',  # mmcv's build needs pkg_resources
    ]
    # markers are read for the target's Python, not this one
    lock = osp.join(REPO, 'requirements', 'lock.txt')
    assert dict(stack.read_lock(lock, '3.10'))['scipy'] == '1.15.3'
    assert dict(stack.read_lock(lock, '3.12'))['scipy'] == '1.17.1'
