"""mmwst: parameter-efficient transfer of frozen Vision Transformers for OpenMMLab."""

from .utils.dependencies import check_dependencies
from .version import __version__

check_dependencies()

# registers the safe checkpoint loader, hooks, backbones and tuners
from . import datasets, engine, models  # noqa: E402,F401,I001

__all__ = ['__version__']
