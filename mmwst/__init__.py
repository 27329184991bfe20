"""mmwst: parameter-efficient transfer of frozen Vision Transformers for OpenMMLab."""

from .utils.dependencies import check_dependencies, skip_broken_mmpretrain_multimodal
from .version import __version__

check_dependencies()
skip_broken_mmpretrain_multimodal()

# `_base_ = ['mmwst::...']` in configs read after this import (the installed package
# also does it before, when mmengine.config is imported: mmwst/config_lookup.py)
from .config_lookup import register as _register_config_package  # noqa: E402

_register_config_package()

# registers the hooks, runner, backbones, tuners and datasets (nothing else changes:
# mmengine's checkpoint loader is swapped only inside mmwst's runner and tools)
from . import datasets, engine, models  # noqa: E402,F401,I001

__all__ = ['__version__']
