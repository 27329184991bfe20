"""mmwst: parameter-efficient transfer of frozen Vision Transformers for OpenMMLab."""

from .utils.dependencies import check_dependencies
from .version import __version__

check_dependencies()

from . import engine  # noqa: E402,F401  (registers hooks and the safe checkpoint loader)

__all__ = ['__version__']
