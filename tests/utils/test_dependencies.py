"""`import mmwst` refuses an unsupported stack with a message that says how to fix it."""

import os.path as osp
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mmwst.utils import dependencies as deps

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _requirements(name):
    with open(osp.join(REPO, 'requirements', name)) as f:
        lines = [line.split('#', 1)[0].strip() for line in f]
    return [Requirement(line) for line in lines if line and not line.startswith('-')]


def test_installed_stack_is_supported():
    assert deps.find_problems() == []
    deps.check_dependencies()  # does not raise


def test_runtime_requirements_match_the_import_check():
    runtime = {r.name: r.specifier for r in _requirements('runtime.txt')}
    assert runtime == {name: SpecifierSet(spec) for name, spec in deps.SUPPORTED.items()}


def test_lock_pins_are_inside_the_supported_ranges():
    pins = {}
    for req in _requirements('lock.txt'):
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            pins[req.name.lower()] = spec.version
    for name, spec in deps.SUPPORTED.items():
        assert pins[name.lower()] in SpecifierSet(spec), (name, pins[name.lower()], spec)
    assert pins['torch'] == '2.11.0' and pins['mmcv'] == '2.1.0'


def test_problems_name_installed_needed_and_fix():
    lowest = {
        name: next(s.version for s in SpecifierSet(spec) if s.operator == '>=')
        for name, spec in deps.SUPPORTED.items()
    }
    versions = dict(lowest)
    assert deps.find_problems(versions, check_mmcv_ops=False) == []
    versions.update(mmcv='2.2.0', torch=None)
    problems = deps.find_problems(versions, check_mmcv_ops=False)
    assert [p.package for p in problems] == ['torch', 'mmcv']
    message = deps.format_problems(problems)
    assert 'torch: installed nothing; mmwst needs >=2.4,<2.12' in message
    assert 'mmcv: installed 2.2.0; mmwst needs >=2.0.0,<2.2.0' in message
    assert 'bash tools/setup_env.sh' in message


def test_mmcv_lite_is_named_with_what_it_lacks_and_the_fix():
    versions = {
        name: next(s.version for s in SpecifierSet(spec) if s.operator == '>=')
        for name, spec in deps.SUPPORTED.items()
    }
    versions.update({'mmcv': None, 'mmcv-lite': '2.1.0'})
    (problem,) = deps.find_problems(versions, check_mmcv_ops=False)
    message = deps.format_problems([problem])
    assert 'mmcv: installed mmcv-lite 2.1.0, the build without compiled ops' in message
    assert 'pip uninstall mmcv-lite' in message and 'MMCV_WITH_OPS=1' in message
    assert 'installed nothing' not in message


def _import_mmwst_with(patch: str) -> subprocess.CompletedProcess:
    code = f'{patch}\nimport mmwst\n'
    return subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_import_fails_clearly_on_wrong_mmcv_version():
    proc = _import_mmwst_with(
        'import importlib.metadata as m\n'
        'real = m.version\n'
        "m.version = lambda name: '2.2.0' if name == 'mmcv' else real(name)\n"
    )
    assert proc.returncode != 0
    assert 'DependencyError' in proc.stderr
    assert 'mmcv: installed 2.2.0; mmwst needs >=2.0.0,<2.2.0' in proc.stderr
    assert 'tools/setup_env.sh' in proc.stderr


def test_import_fails_clearly_without_compiled_ops():
    proc = _import_mmwst_with("import sys\nsys.modules['mmcv._ext'] = None\n")
    assert proc.returncode != 0
    assert 'mmcv ops (mmcv._ext): installed no compiled ops' in proc.stderr


def test_skip_variable_turns_the_error_into_a_warning(monkeypatch):
    monkeypatch.setattr(deps, 'find_problems', lambda: [deps.Problem('mmcv', '9', '<2.2')])
    with pytest.raises(deps.DependencyError):
        deps.check_dependencies()
    monkeypatch.setenv(deps.SKIP_ENV, '1')
    with pytest.warns(UserWarning, match='mmcv: installed 9'):
        deps.check_dependencies()


def test_ops_without_cuda_kernels_are_refused_where_a_gpu_is_present(monkeypatch):
    import glob

    import mmcv._ext
    import torch

    # read from the libraries each links: this machine's mmcv ops are a CPU build, and
    # torch's CUDA library stands in for one that links libc10_cuda like a CUDA build
    needed = deps._needed_libraries(mmcv._ext.__file__)
    assert 'libtorch_cpu.so' in needed and 'libc10.so' in needed
    cuda_lib = glob.glob(osp.join(osp.dirname(torch.__file__), 'lib', 'libtorch_cuda.so'))
    if cuda_lib:  # a CUDA build of torch
        assert deps.ops_have_cuda_kernels(cuda_lib[0])
    assert not deps.ops_have_cuda_kernels(__file__)  # not a library at all
    # a CPU build of the ops: fine without a GPU, refused with one
    monkeypatch.setattr(deps, 'ops_have_cuda_kernels', lambda path: False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert deps.mmcv_ops_problem() is None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    problem = deps.mmcv_ops_problem()
    assert 'ops compiled without CUDA kernels, but torch sees a GPU' in problem
    assert 'bash tools/setup_env.sh' in problem
    # a CUDA build passes
    monkeypatch.setattr(deps, 'ops_have_cuda_kernels', lambda path: True)
    assert deps.mmcv_ops_problem() is None


def test_transformers_5_does_not_break_the_import(tmp_path):
    # mmpretrain 1.2 imports its multimodal models whenever transformers >= 4.28 is there,
    # and they fail with transformers 5; a stand-in transformers 5 that cannot be used
    fake = tmp_path / 'site'
    (fake / 'transformers').mkdir(parents=True)
    (fake / 'transformers' / '__init__.py').write_text(
        "raise ImportError('a transformers 5 stand-in')\n"
    )
    (fake / 'transformers-5.0.0.dist-info').mkdir()
    (fake / 'transformers-5.0.0.dist-info' / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n'
    )
    code = (
        f'import sys; sys.path.insert(0, {str(fake)!r})\n'
        'import mmwst\n'
        'from mmpretrain.utils import dependency\n'
        'assert not dependency.WITH_MULTIMODAL\n'
        "print('imported')\n"
    )
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'imported' in proc.stdout
