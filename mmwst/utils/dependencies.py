"""Check that the installed OpenMMLab stack is one mmwst supports.

``import mmwst`` runs :func:`check_dependencies` once. A mismatch raises
:class:`DependencyError` whose message lists, for every offending package, what is
installed, what mmwst needs, and the command that fixes it. The supported ranges
below are the same as the ones in ``requirements/runtime.txt`` (a test keeps the two
in step); ``requirements/lock.txt`` pins the exact stack the test-suite runs on.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

#: Distribution name -> supported version range (PEP 440 specifier).
SUPPORTED: dict[str, str] = {
    'torch': '>=2.4,<2.12',
    'torchvision': '>=0.19,<0.27',
    'mmengine': '>=0.10.0,<0.11',
    'mmcv': '>=2.0.0,<2.2.0',
    'mmdet': '>=3.0.0,<3.4.0',
    'mmsegmentation': '>=1.0.0,<1.3.0',
    'mmpretrain': '>=1.0.0,<1.3.0',
    'PyWavelets': '>=1.4',
    'numpy': '>=1.23,<3',
    # mmsegmentation imports these at load time without declaring them
    'ftfy': '>=6.0',
    'regex': '>=2022.1',
}

#: Set this environment variable to 1 to turn a failed check into a warning
#: (for example to use a newer release at your own risk).
SKIP_ENV = 'MMWST_SKIP_DEPENDENCY_CHECK'

FIX_HINT = (
    'To fix it, run `bash tools/setup_env.sh` in the mmwst checkout: it creates .venv '
    'with the exact tested stack (requirements/lock.txt) and compiles mmcv with its ops. '
    'Or install by hand into your own environment:\n'
    '    pip install -r requirements/lock.txt   (everything except mmcv)\n'
    '    MMCV_WITH_OPS=1 pip install --no-build-isolation --no-cache-dir mmcv==2.1.0\n'
    f'Set {SKIP_ENV}=1 to continue anyway at your own risk.'
)


class DependencyError(ImportError):
    """Raised when the installed stack cannot run mmwst."""


@dataclass(frozen=True)
class Problem:
    package: str
    installed: str
    needed: str

    def __str__(self) -> str:
        return f'  {self.package}: installed {self.installed}; mmwst needs {self.needed}'


def _installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def find_problems(
    versions: dict[str, str | None] | None = None, check_mmcv_ops: bool = True
) -> list[Problem]:
    """Return every mismatch between the installed stack and :data:`SUPPORTED`.

    Args:
        versions: distribution name -> installed version (``None`` = not installed).
            Defaults to what ``importlib.metadata`` reports.
        check_mmcv_ops: also check that mmcv's compiled ops (``mmcv._ext``) load.
    """
    problems = []
    for dist, spec in SUPPORTED.items():
        found = versions.get(dist) if versions is not None else _installed_version(dist)
        if found is None and dist == 'mmcv':
            lite = versions.get('mmcv-lite') if versions is not None else None
            lite = lite or (_installed_version('mmcv-lite') if versions is None else None)
            if lite is not None:
                problems.append(
                    Problem(
                        'mmcv',
                        f'mmcv-lite {lite}, the build without compiled ops (Cascade Mask '
                        'R-CNN needs its RoIAlign and NMS); remove it with '
                        '`pip uninstall mmcv-lite` and install mmcv as below',
                        spec,
                    )
                )
                continue
        if found is None:
            problems.append(Problem(dist, 'nothing', spec))
            continue
        try:
            ok = Version(found) in SpecifierSet(spec)
        except InvalidVersion:
            ok = False
        if not ok:
            problems.append(Problem(dist, found, spec))
    installed_mmcv = versions.get('mmcv') if versions is not None else _installed_version('mmcv')
    if check_mmcv_ops and installed_mmcv is not None:
        reason = mmcv_ops_problem()
        if reason:
            problems.append(
                Problem(
                    'mmcv ops (mmcv._ext)',
                    reason,
                    'mmcv compiled with its ops against the installed torch',
                )
            )
    return problems


def mmcv_ops_problem() -> str | None:
    """Why mmcv's compiled ops cannot be used, or ``None`` when they load."""
    try:
        torch = importlib.import_module('torch')
        ext = importlib.import_module('mmcv._ext')
    except ModuleNotFoundError:
        return 'no compiled ops (mmcv was installed without MMCV_WITH_OPS=1, e.g. the lite build)'
    except ImportError as err:  # e.g. compiled against another torch: undefined symbols
        return f'compiled ops fail to load ({err}); mmcv was built against another torch'
    if torch.cuda.is_available() and not ops_have_cuda_kernels(ext.__file__):
        return (
            'ops compiled without CUDA kernels, but torch sees a GPU (RoIAlign and NMS '
            'would fail on it); rebuild mmcv with `bash tools/setup_env.sh`, which compiles '
            'the CUDA ops for the visible GPU (MMWST_TORCH=system keeps your torch), or set '
            'CUDA_VISIBLE_DEVICES= to run on the CPU'
        )
    return None


def _needed_libraries(path: str) -> list[str]:
    """The shared libraries an ELF64 (little-endian) file links (its DT_NEEDED entries),
    read from the dynamic segment without loading the file."""
    import struct

    with open(path, 'rb') as f:
        header = f.read(64)
        if header[:4] != b'\x7fELF' or header[4] != 2 or header[5] != 1:
            return []
        phoff, phentsize, phnum = (
            struct.unpack_from('<Q', header, 32)[0],
            *struct.unpack_from('<HH', header, 54),
        )
        f.seek(phoff)
        segments = [struct.unpack_from('<IIQQQQQQ', f.read(phentsize)) for _ in range(phnum)]
        loads = [s for s in segments if s[0] == 1]  # PT_LOAD: (.., offset, vaddr, .., filesz)
        dynamic = next((s for s in segments if s[0] == 2), None)  # PT_DYNAMIC
        if dynamic is None:
            return []
        f.seek(dynamic[2])
        raw = f.read(dynamic[5])
        entries = [struct.unpack_from('<qQ', raw, i) for i in range(0, len(raw) - 15, 16)]
        strtab = next((value for tag, value in entries if tag == 5), None)  # DT_STRTAB
        if strtab is None:
            return []
        # the string table's address -> its offset in the file
        base = next(s[2] + strtab - s[3] for s in loads if s[3] <= strtab < s[3] + s[6])
        names = []
        for tag, value in entries:
            if tag == 1:  # DT_NEEDED
                f.seek(base + value)
                names.append(f.read(256).split(b'\0', 1)[0].decode())
        return names


def ops_have_cuda_kernels(ext_path: str) -> bool:
    """Whether mmcv's compiled ops (the ``mmcv._ext`` library at ``ext_path``) hold CUDA
    kernels: a CUDA build links torch's CUDA library, a CPU build does not. (mmcv's own
    ``get_compiling_cuda_version()`` crashes in some CUDA 13 builds, so it is not asked.)"""
    return any(name.startswith('libc10_cuda') for name in _needed_libraries(ext_path))


def format_problems(problems: list[Problem]) -> str:
    lines = ['mmwst cannot run with the installed packages:']
    lines += [str(p) for p in problems]
    lines.append(FIX_HINT)
    return '\n'.join(lines)


def check_dependencies() -> None:
    """Raise :class:`DependencyError` (or warn, see :data:`SKIP_ENV`) on a mismatch."""
    problems = find_problems()
    if not problems:
        return
    message = format_problems(problems)
    if os.environ.get(SKIP_ENV) == '1':
        import warnings

        warnings.warn(message, stacklevel=3)
        return
    raise DependencyError(message)


def skip_broken_mmpretrain_multimodal() -> None:
    """mmpretrain 1.2 imports its multimodal models (BLIP, ...) whenever transformers is
    installed, and they fail to import with transformers 5. mmwst uses none of them: with
    transformers >= 5, tell mmpretrain that the multimodal extra is absent (it registers
    placeholders instead) before anything imports it.

    The only change ``import mmwst`` makes outside its own classes, and only where it is
    needed: without transformers >= 5, or with mmpretrain imported already, it does
    nothing; with it, ``import mmpretrain`` would fail for everyone, and the multimodal
    models it would have offered could not be built anyway."""
    found = _installed_version('transformers')
    if found is None or Version(found) < Version('5') or 'mmpretrain' in sys.modules:
        return
    spec = importlib.util.find_spec('mmpretrain')
    if spec is None or not spec.submodule_search_locations:
        return
    path = os.path.join(spec.submodule_search_locations[0], 'utils', 'dependency.py')
    module_spec = importlib.util.spec_from_file_location('mmpretrain.utils.dependency', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.WITH_MULTIMODAL = False
    sys.modules['mmpretrain.utils.dependency'] = module
