"""Makes ``mmwst::`` config bases resolve under any tool, before mmwst is imported.

The ``.pth`` file installed with mmwst runs :func:`install` at interpreter start. It
imports nothing (mmengine included) and adds one finder to ``sys.meta_path``, which
only waits for ``mmengine.config.utils``: once that module has been executed, mmwst's
entry is added to its ``MODULE2PACKAGE`` table (see ``mmwst/config_lookup.py``) and the
finder is gone. Every other import passes it by with one string comparison; the module
keeps its own loader and spec. Only the standard library is used here, and any failure
leaves the import as it would have been without mmwst.
"""

from __future__ import annotations

import sys

TARGET = 'mmengine.config.utils'
#: Must equal ``mmwst.config_lookup.PREFIX`` and ``LOOKUP_NAME`` (a test checks it).
PREFIX = 'mmwst'
LOOKUP_NAME = 'mmwst.config_lookup'


def add_entry(module) -> None:
    """Add mmwst's entry to the table of an imported ``mmengine.config.utils``."""
    table = getattr(module, 'MODULE2PACKAGE', None)
    if isinstance(table, dict):
        table.setdefault(PREFIX, LOOKUP_NAME)


class _AddEntryAfterExec:
    """Wraps the real loader of the target for its one execution."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # the module gets its real loader back before it runs
        module.__loader__ = self.loader
        if getattr(module, '__spec__', None) is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        try:
            add_entry(module)
        except Exception:  # never fail an import of mmengine because of mmwst
            pass


class ConfigTableFinder:
    """A one-shot meta path finder for ``mmengine.config.utils``."""

    _searching = False

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != TARGET or cls._searching:
            return None
        cls._searching = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, 'find_spec', None)
                if finder is not cls and find is not None:
                    spec = find(fullname, path, target)
                    if spec is not None:
                        break
            if spec is None:
                return None
            if spec.loader is not None and hasattr(spec.loader, 'exec_module'):
                spec.loader = _AddEntryAfterExec(spec.loader)
            # only now: the import system stops at the spec returned (leaving sys.meta_path
            # while it goes through it and returning nothing would make it skip a finder)
            uninstall()
            return spec
        except Exception:
            return None  # the import goes on as if this finder were not there
        finally:
            cls._searching = False


def install() -> None:
    """Add mmwst's entry now if mmengine's config table is loaded, else once it is."""
    try:
        loaded = sys.modules.get(TARGET)
        if loaded is not None:
            add_entry(loaded)
        elif ConfigTableFinder not in sys.meta_path:
            sys.meta_path.insert(0, ConfigTableFinder)
    except Exception:
        pass


def uninstall() -> None:
    while ConfigTableFinder in sys.meta_path:
        sys.meta_path.remove(ConfigTableFinder)
