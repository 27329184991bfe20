"""Install mmwst. The supported ranges come from requirements/*.txt.

mmcv must be compiled with its ops; see README.md (tools/setup_env.sh does everything).

Besides the package, an install holds what other projects reach mmwst through:

* ``mmwst/.mim/configs`` and ``mmwst/.mim/tools``: the repository's ``configs/`` and
  ``tools/``, where mmengine reads ``_base_ = ['mmwst::<path>']`` from (OpenMMLab's
  layout). A built package (``pip install .``, a wheel) holds copies; in the checkout
  they are links to the two folders, which an editable install uses as they are.
* ``mmwst-config-lookup.pth``: makes mmengine know the ``mmwst::`` prefix as soon as
  ``mmengine.config`` is imported (``_mmwst_config_lookup.py``), also in an editable
  install.
"""

import os
import os.path as osp
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: Folders of the repository shipped as ``mmwst/.mim/<name>``.
MIM_FOLDERS = ('configs', 'tools')
PTH_NAME = 'mmwst-config-lookup.pth'
# one line, run by site at interpreter start; does nothing if the hook module is gone
PTH_LINE = (
    "import importlib.util as u; u.find_spec('_mmwst_config_lookup') and "
    "__import__('_mmwst_config_lookup').install()\n"
)


def read_requirements(name):
    """Requirement lines of requirements/<name>.txt, without comments."""
    lines = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                lines.append(line)
    return lines


def read_version():
    with open(osp.join(HERE, 'mmwst', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def _ignore_caches(folder, names):
    return [n for n in names if n == '__pycache__' or n.endswith(('.pyc', '.pyo'))]


class BuildPy(build_py):
    """Also copy ``configs/`` and ``tools/`` into ``mmwst/.mim`` and add the ``.pth``
    file (a built package; an editable install uses the checkout's links)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim = osp.join(self.build_lib, 'mmwst', '.mim')
        for name in MIM_FOLDERS:
            target = osp.join(mim, name)
            if osp.islink(target) or osp.isfile(target):
                os.remove(target)
            elif osp.isdir(target):
                shutil.rmtree(target)
            # copies of the files, never the checkout's links
            shutil.copytree(osp.join(HERE, name), target, ignore=_ignore_caches)
        with open(osp.join(self.build_lib, PTH_NAME), 'w') as f:
            f.write(PTH_LINE)


CMDCLASS = {'build_py': BuildPy}
try:  # an editable install gets the .pth file too (written into the editable wheel)
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # a setuptools without PEP 660 installs: `import mmwst` registers
    editable_wheel = None
if editable_wheel is not None and hasattr(editable_wheel, '_install_namespaces'):

    class EditableWheel(editable_wheel):
        def _install_namespaces(self, installation_dir, pth_prefix):
            super()._install_namespaces(installation_dir, pth_prefix)
            with open(osp.join(installation_dir, PTH_NAME), 'w') as f:
                f.write(PTH_LINE)

    CMDCLASS['editable_wheel'] = EditableWheel


setup(
    name='mmwst',
    version=read_version(),
    description='Parameter-efficient transfer of frozen Vision Transformers '
    '(WST, HST, FreqFit, PATT/BAPAT, RLRR and baselines) for OpenMMLab',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10,<3.13',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    py_modules=['_mmwst_config_lookup'],
    include_package_data=True,
    package_data={'mmwst': ['weights/*.safetensors', 'weights/*.json', '.mim/model-index.yml']},
    cmdclass=CMDCLASS,
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'optional': read_requirements('optional.txt'),
        'tests': read_requirements('tests.txt') + read_requirements('optional.txt'),
    },
    classifiers=[
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
