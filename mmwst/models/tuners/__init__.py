"""The tuners: one module per method, each registering its class(es) in mmwst's MODELS.

Every module of this package is imported here and every tuner class it defines is
exported under its own name (``from mmwst.models.tuners import LoRA``): a new method's
file is picked up without an edit here.
"""

import importlib
import pkgutil

from .base import BaseTuner, BlockSpec, HostSpec, TokenContext, UnsupportedHostError

__all__ = ['BaseTuner', 'BlockSpec', 'HostSpec', 'TokenContext', 'UnsupportedHostError']


def _export_tuners() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f'{__name__}.{info.name}')
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseTuner)
                and obj is not BaseTuner
                and obj.__module__ == module.__name__
            ):
                globals()[name] = obj
                __all__.append(name)


_export_tuners()
