"""Decisions of tools/setup_env.sh that need Python: which torch, which packages, which mmcv.

Run by the set-up script with the interpreter of the environment being set up, and by
the tests with made-up inputs (a fake torch version, no nvcc), so that every mode switch
is checked on a machine without a GPU. Only the standard library and pip's vendored
``packaging`` are used: the target environment may not have anything else yet.

    python tools/_setup_stack.py torch-check            # exit 1 + message if unsupported
    python tools/_setup_stack.py plan MODE LOCK         # requirements to install, one a line
    python tools/_setup_stack.py mmcv-build             # KEY=VALUE lines for the mmcv build
    python tools/_setup_stack.py wheelhouse LOCK PYVER [HAVE]  # what an offline machine needs
"""

from __future__ import annotations

import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from importlib import metadata

try:
    from packaging.markers import Marker
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError:  # a bare environment: pip always carries a copy
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import Version

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: Distributions that come with (and must match) the torch build: never installed or
#: replaced when the environment brings its own torch.
TORCH_OWNED = re.compile(r'^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$')
#: Installed at exactly the locked version in every mode: mmwst is tested against these.
EXACT = {'mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain', 'pywavelets'}
#: Compiled separately (with ops, against the environment's torch).
COMPILED = {'mmcv'}
#: Needed to compile mmcv (its setup.py imports pkg_resources, which newer setuptools
#: dropped): always in a wheelhouse, installed only for the build when missing.
BUILD = {'setuptools'}
#: Distributions that provide the ``cv2`` module: any one of them satisfies the others.
OPENCV = {
    'opencv-python',
    'opencv-python-headless',
    'opencv-contrib-python',
    'opencv-contrib-python-headless',
}
MODES = ('pinned', 'system', 'active')


def canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def runtime_range(name: str, path: str | None = None) -> str:
    """The supported range of ``name`` in requirements/runtime.txt."""
    path = path or osp.join(REPO, 'requirements', 'runtime.txt')
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            match = re.match(r'^([A-Za-z0-9_.-]+)\s*(.*)$', line)
            if match and canonical(match.group(1)) == canonical(name):
                return match.group(2).strip()
    raise KeyError(f'{name} is not in {path}')


def torch_problem(torch_version: str | None, cuda: str | None, spec: str) -> str | None:
    """Why this torch cannot be kept, or ``None`` when it can."""
    if torch_version is None:
        return (
            'this Python has no torch. MMWST_TORCH=system/active keeps an existing torch: '
            'point PYTHON at the interpreter that has it (e.g. PYTHON=$(which python)), or '
            'leave MMWST_TORCH unset to install the pinned torch'
        )
    public = torch_version.split('+', 1)[0]
    if Version(public) not in SpecifierSet(spec):
        return (
            f'torch {torch_version} is outside the range mmwst supports ({spec}, from '
            'requirements/runtime.txt). Install a torch in that range into this '
            'environment (for your CUDA, from https://pytorch.org), or leave MMWST_TORCH '
            'unset to let the set-up install the tested torch into its own venv'
        )
    return None


def _installed() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata['Name']
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


def read_lock(path: str, python_version: str | None = None) -> list[tuple[str, str]]:
    """(name, version) pins of the lock file whose markers hold for this interpreter
    (or for ``python_version``, e.g. ``'3.12'``, when a wheelhouse is made for another)."""
    env = None if python_version is None else {'python_version': python_version}
    pins = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line or line.startswith('-'):
                continue
            req, _, marker = line.partition(';')
            if marker.strip() and not Marker(marker.strip()).evaluate(env):
                continue
            name, version = (s.strip() for s in req.split('=='))
            pins.append((name, version))
    return pins


def plan(mode: str, pins: list[tuple[str, str]], installed: dict[str, str]) -> list[str]:
    """The requirements (``name==version``) that the set-up installs without resolving.

    ``pinned``: the whole lock except mmcv (pip resolves and installs it as usual).
    ``system``/``active``: the environment keeps its torch family and any package it
    already has (numpy, opencv, ...); the packages it lacks are installed at their
    locked versions, and the OpenMMLab packages and PyWavelets at exactly the tested
    versions whatever is there.
    """
    if mode not in MODES:
        raise ValueError(f'MMWST_TORCH={mode!r}: choose one of {", ".join(MODES)}')
    installed = {canonical(k): v for k, v in installed.items()}
    has_opencv = any(name in installed for name in OPENCV)
    wanted = []
    for name, version in pins:
        key = canonical(name)
        if key in COMPILED:
            continue
        if mode == 'pinned':
            wanted.append(f'{name}=={version}')
            continue
        if TORCH_OWNED.match(key):
            continue
        if key in EXACT:
            if installed.get(key) != version:
                wanted.append(f'{name}=={version}')
        elif key in OPENCV:
            if not has_opencv:
                wanted.append(f'{name}=={version}')
        elif key not in installed:
            wanted.append(f'{name}=={version}')
    return wanted


def wheelhouse(pins: list[tuple[str, str]], have: set[str]) -> list[str]:
    """What an offline machine needs from a wheelhouse: the lock minus the torch family
    and minus what it already has (``have``: its distribution names; OpenCV in any
    flavour counts), mmcv's source included (compiled there); every OpenMMLab package."""
    have = {canonical(name) for name in have}
    if have & OPENCV:
        have |= OPENCV
    return [
        f'{name}=={version}'
        for name, version in pins
        if not TORCH_OWNED.match(canonical(name))
        and (canonical(name) not in have or canonical(name) in EXACT | COMPILED | BUILD)
    ]


def _nvcc(env: dict[str, str]) -> str | None:
    home = env.get('CUDA_HOME') or env.get('CUDA_PATH')
    if home and osp.isfile(osp.join(home, 'bin', 'nvcc')):
        return osp.join(home, 'bin', 'nvcc')
    return shutil.which('nvcc', path=env.get('PATH'))


def _nvcc_version(nvcc: str) -> str | None:
    out = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    match = re.search(r'release (\d+\.\d+)', out)
    return match.group(1) if match else None


def mmcv_build(
    torch_version: str,
    python_tag: str,
    torch_cuda: str | None,
    capabilities: list[tuple[int, int]],
    nvcc: str | None,
    nvcc_version: str | None,
    env: dict[str, str],
) -> dict[str, str]:
    """How to compile mmcv here: the cache key and the build's environment.

    A CPU build when torch sees no GPU (or ``FORCE_CUDA=0`` says so); otherwise a CUDA
    build for the visible GPUs' architectures only (``TORCH_CUDA_ARCH_LIST``, unless set
    already), which needs ``nvcc`` of torch's CUDA major version. Raises ``RuntimeError``
    with the fix when the CUDA build cannot be done.
    """
    force = env.get('FORCE_CUDA')
    cuda = force == '1' or (bool(capabilities) and force != '0')
    if not cuda:
        return dict(KEY=f'torch{torch_version}-{python_tag}-cpu', FORCE_CUDA='0')
    if torch_cuda is None:
        raise RuntimeError(
            f'FORCE_CUDA=1 but torch {torch_version} is a CPU build: install a CUDA '
            'build of torch, or unset FORCE_CUDA'
        )
    if nvcc is None:
        raise RuntimeError(
            'torch sees a CUDA GPU but nvcc (the CUDA compiler) was not found, so mmcv '
            f'cannot be compiled with its CUDA ops. Install the CUDA {torch_cuda} toolkit '
            '(its major version must match torch.version.cuda) and put its bin/ on PATH '
            'or set CUDA_HOME; or set FORCE_CUDA=0 to build CPU ops only (then the '
            'detector runs its RoIAlign and NMS on the CPU and `import mmwst` refuses on '
            'a GPU machine unless MMWST_SKIP_DEPENDENCY_CHECK=1)'
        )
    if nvcc_version is None or nvcc_version.split('.')[0] != torch_cuda.split('.')[0]:
        raise RuntimeError(
            f'{nvcc} is CUDA {nvcc_version or "of an unknown version"} but torch was built '
            f'with CUDA {torch_cuda}: their major versions must match. Point CUDA_HOME '
            f'at a CUDA {torch_cuda.split(".")[0]}.x toolkit'
        )
    arch_list = env.get('TORCH_CUDA_ARCH_LIST', '').strip()
    if not arch_list:
        if not capabilities:
            raise RuntimeError(
                'FORCE_CUDA=1 without a visible GPU: set TORCH_CUDA_ARCH_LIST to the '
                'architectures to compile for (e.g. "9.0" for H100/H200, "8.0" for A100)'
            )
        arch_list = ';'.join(f'{major}.{minor}' for major, minor in sorted(set(capabilities)))
    arch_tag = 'sm' + '_'.join(
        a.replace('.', '').replace('+PTX', 'ptx') for a in arch_list.split(';')
    )
    return dict(
        KEY=f'torch{torch_version}-{python_tag}-cuda{torch_cuda}-{arch_tag}',
        FORCE_CUDA='1',
        TORCH_CUDA_ARCH_LIST=arch_list,
        CUDA_HOME=osp.dirname(osp.dirname(osp.realpath(nvcc))),
    )


def _torch_facts() -> tuple[str | None, str | None, list[tuple[int, int]]]:
    try:
        import torch
    except ImportError:
        return None, None, []
    caps = []
    if torch.cuda.is_available():
        caps = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    return torch.__version__, torch.version.cuda, caps


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ''
    if command == 'torch-check':
        version, cuda, _ = _torch_facts()
        problem = torch_problem(version, cuda, runtime_range('torch'))
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f'torch {version} (CUDA {cuda or "none"})')
        return 0
    if command == 'plan':
        mode, lock = argv[1], argv[2]
        for line in plan(mode, read_lock(lock), _installed()):
            print(line)
        return 0
    if command == 'mmcv-build':
        version, cuda, caps = _torch_facts()
        nvcc = _nvcc(dict(os.environ))
        tag = f'cp{sys.version_info[0]}{sys.version_info[1]}'
        try:
            build = mmcv_build(
                version, tag, cuda, caps, nvcc, nvcc and _nvcc_version(nvcc), dict(os.environ)
            )
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        for key, value in build.items():
            print(f'{key}={value}')
        return 0
    if command == 'wheelhouse':
        have = set()
        if len(argv) > 3:
            with open(argv[3]) as f:  # `pip list --format=freeze` or one name a line
                have = {
                    re.split(r'[=<>@ ]', line.strip(), maxsplit=1)[0]
                    for line in f
                    if not line.startswith('#')
                }
            have.discard('')
        for line in wheelhouse(read_lock(argv[1], argv[2]), have):
            print(line)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
