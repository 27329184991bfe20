"""mmwst: parameter-efficient transfer of frozen Vision Transformers for OpenMMLab."""

from .utils.dependencies import check_dependencies, skip_broken_mmpretrain_multimodal
from .version import __version__

check_dependencies()
skip_broken_mmpretrain_multimodal()

# registers the safe checkpoint loader, hooks, backbones and tuners
from . import datasets, engine, models  # noqa: E402,F401,I001

__all__ = ['__version__']
