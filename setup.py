"""Install mmwst. The supported ranges come from requirements/*.txt.

mmcv must be compiled with its ops; see README.md (tools/setup_env.sh does everything).
"""

import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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
    include_package_data=True,
    package_data={'mmwst': ['weights/*.safetensors', 'weights/*.json']},
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
