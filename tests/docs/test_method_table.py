"""The README's method table against the methods themselves: every method folder has a
row, and each row's count and mergeability are what the folder's ViT-B/16 configs and
their tuner classes say (the configs' ``trainable_without_head``, the classes'
``mergeable``) - the table repeats them, it does not hold them."""

from __future__ import annotations

import glob
import os.path as osp
import re

from mmengine.config import Config

from tests.docs.test_docs_figures import REPO, table_with

TABLE = ('README.md', 'method', 'config', 'params (ViT-B/16)', 'mergeable')


def _rows() -> dict[str, dict[str, str]]:
    """config folder -> the row's cells by column."""
    header, rows = table_with(*TABLE)
    out = {}
    for cells in rows:
        row = dict(zip(header, cells))
        folder = re.fullmatch(r'`configs/([a-z_]+)`', row['config'])
        assert folder, f'README, {row["method"]}: config cell {row["config"]!r}'
        out[folder.group(1)] = row
    return out


def _vit_configs(folder: str) -> list[str]:
    """The folder's single-method ViT-B/16 VTAB-1k configs (VPT: shallow, then deep)."""
    paths = glob.glob(osp.join(REPO, 'configs', folder, '*vit-b16_vtab-1k.py'))
    return sorted(paths, key=lambda p: ('deep' in p, p))


def test_every_method_folder_has_a_row():
    folders = {
        osp.basename(osp.dirname(p))
        for p in glob.glob(osp.join(REPO, 'configs', '*', '*vtab-1k.py'))
    }
    assert folders == set(_rows()), folders ^ set(_rows())


def test_counts_and_mergeability_equal_the_configs_and_classes():
    from mmpretrain.registry import MODELS

    import mmwst  # noqa: F401

    wrong = []
    for folder, row in _rows().items():
        paths = _vit_configs(folder)
        if folder == 'freqfit':  # FreqFit's row quotes its own part on top of a host method
            paths = []
        configs = [Config.fromfile(p) for p in paths]
        parts = [p.strip() for p in row['params (ViT-B/16)'].split('/')]
        quoted = [p.replace(',', '') for p in parts if re.fullmatch(r'[\d,]+', p)]
        if configs:
            stated = [str(c.trainable_without_head) for c in configs]
            if quoted != stated:
                wrong.append(f'{row["method"]}: README {quoted}, configs {stated}')
        classes = {
            t['type']: MODELS.get(t['type'])
            for p in glob.glob(osp.join(REPO, 'configs', folder, '*vtab-1k.py'))
            for t in Config.fromfile(p).model.backbone.tuners
        }
        mergeable = all(cls.mergeable for cls in classes.values())
        if row['mergeable'] != ('yes' if mergeable else 'no'):
            wrong.append(
                f'{row["method"]}: README says {row["mergeable"]}, the classes {mergeable}'
            )
    assert not wrong, '\n'.join(wrong)
