"""Weights that ship with mmwst: a small ViT pretrained here on generated images.

``vit-t-p8_fractaldb.safetensors`` is mmpretrain's ``VisionTransformer`` with 8 blocks,
width 128, 2 heads, MLP 512 and patch 8 (1,613,440 parameters), pretrained at 32x32 on
256 fractal categories (:class:`mmwst.datasets.FractalDB`) by
``configs/pretrain/vit-t-p8_fractaldb-256_32px.py`` and stored in fp16 (a frozen host
does not need more). Its card - the same name with ``.json`` - records the recipe, the
seed, the upstream accuracy, the sha256 of the file and the command that reproduces it.
Every mmwst host loads it through ``pretrained=`` with the strict key check.
"""

from __future__ import annotations

import json
import os.path as osp

HERE = osp.dirname(osp.abspath(__file__))
#: The shipped frozen host (file name inside this folder).
SHIPPED_VIT = 'vit-t-p8_fractaldb.safetensors'


def shipped_vit() -> str:
    """Path of the shipped pretrained ViT-T/8."""
    path = osp.join(HERE, SHIPPED_VIT)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'the shipped backbone {path} is missing from this installation; reinstall '
            'mmwst, or rebuild it with the command in its card (docs/pretrained.md)'
        )
    return path


def shipped_vit_card() -> dict:
    """The card of the shipped ViT: recipe, seed, upstream accuracy, sha256..."""
    with open(osp.splitext(shipped_vit())[0] + '.json') as f:
        return json.load(f)


def shipped_vit_host(**overrides) -> dict:
    """Backbone arguments (``arch``, ``patch_size``, ``img_size``, ``pretrained``) that
    rebuild the shipped ViT as a frozen mmwst host; ``overrides`` replace any of them."""
    card = shipped_vit_card()
    host = dict(card['host'], pretrained=shipped_vit())
    host.update(overrides)
    return host
