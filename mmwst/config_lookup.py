"""How mmengine finds mmwst's configs: ``_base_ = ['mmwst::demo/shapes_upernet.py']``.

mmengine resolves a base ``PREFIX::path`` through its table
``mmengine.config.utils.MODULE2PACKAGE`` (prefix -> the name to look the package up by):
it asks for the folder that name is installed in and reads
``<folder>/.mim/configs/<path>``. mmwst ships its configs there (``mmwst/.mim/configs``:
a copy of the repository's ``configs/`` in a built package, a link to it in a checkout)
and adds its prefix to that table:

* when ``mmengine.config`` is first imported, through the ``.pth`` file installed with
  mmwst (``_mmwst_config_lookup``), so that tools which read a config before importing
  anything of mmwst (mmdet's, mmseg's and mmpretrain's ``tools/train.py``) resolve
  ``mmwst::`` bases too;
* by ``import mmwst`` (:func:`register`), for an mmwst that is not installed (a
  checkout on ``PYTHONPATH``).

The name looked up is this module's, not the distribution's. mmengine
(``mmengine.utils.get_installed_path``) first asks the installed distributions, and
mmwst's distribution points at site-packages also when it is installed in editable
mode, where mmwst's files are not; no distribution has this module's name, so mmengine
falls back to ``importlib.util.find_spec``, which finds this file - and so the folder of
the mmwst that is imported, whichever way it was installed. (Finding it imports mmwst,
which a config that names mmwst's classes does anyway.)
"""

from __future__ import annotations

import os.path as osp

#: The prefix of mmwst's configs in ``_base_`` entries.
PREFIX = 'mmwst'
#: What ``MODULE2PACKAGE[PREFIX]`` holds: the name mmengine looks mmwst's folder up by.
LOOKUP_NAME = __name__
#: The shipped configs (the repository's ``configs/``) and tools (its ``tools/``).
CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'configs')
TOOLS = osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'tools')


def register() -> None:
    """Add mmwst to mmengine's table of config packages (a prefix already there is left
    as it is)."""
    from mmengine.config import utils

    utils.MODULE2PACKAGE.setdefault(PREFIX, LOOKUP_NAME)
