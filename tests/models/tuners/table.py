"""The shared tuner table: one row per method, checked by test_tuner_table.py.

Every method in mmwst has a row here: the baselines below, and every other method's
``CASES`` in its own test file beside this one, ``test_<method>.py`` (or in a
``table_<method>.py`` module where other tests import the row's helpers: HST's widths,
RLRR's count), collected by :func:`all_cases`. ``count`` gives the expected number of trainable
backbone parameters from the block widths alone (an independent formula, never the
implementation's own bookkeeping); ``None`` means "see ``count_by_name``", a
name-based count used for the Swin host's irregular layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from mmwst.models import TunedSwinTransformer, TunedVisionTransformer
from mmwst.models.backbones import DenseTunedViT, TunedEVA02, TunedSAMViT, dense_backbone_for

VIT_ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
SWIN_ARCH = dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4])
#: the SwiGLU hidden width of the tiny EVA-02 host
EVA_HIDDEN = 24
SIZES = {
    'vit': [(32, 32), (32, 48)],
    'swin': [(64, 64), (64, 96)],
    'dinov2': [(56, 56), (56, 84)],
    'clip': [(32, 32), (32, 48)],
    'eva02': [(56, 56), (56, 84)],
    'sam': [(32, 32), (32, 48)],
    'dense': [(64, 64), (64, 96)],
    'dense_beside': [(64, 64), (64, 96)],
}
#: the plain hosts every method runs on, and those that are ViTs: the classic one, a
#: DINOv2-style one (patch 14, layer scale, 2 register tokens), a CLIP-style one (a norm
#: before the first block, no patch-embedding bias, LayerNorm eps 1e-5) and an EVA-02
#: one (rotary positions, SwiGLU MLPs with sub-LN, patch 14); SAM's image encoder
#: (windows of 2 x 2 patches, two global blocks, the convolutional neck) runs every method
#: that adds no token
HOSTS = ('vit', 'dinov2', 'clip', 'eva02', 'swin', 'sam')
VIT_HOSTS = ('vit', 'dinov2', 'clip', 'eva02')
#: the hosts with one patch grid throughout (the ViTs and SAM's encoder)
GRID_HOSTS = ('vit', 'dinov2', 'clip', 'eva02', 'sam')
#: the hosts for methods that add tokens (not SAM: its windowed attention has no place)
TOKEN_HOSTS = ('vit', 'dinov2', 'clip', 'eva02', 'swin')
#: the dense backbone's side network on the tiny host (small widths, heads dividing them)
DENSE_HST = dict(channels=[8, 12, 16, 32], num_heads=[1, 2, 2, 4])


def build_host(kind: str, tuners, img_size: int | None = None, **kwargs) -> nn.Module:
    """The tiny host of ``kind`` with ``tuners``: one of :data:`HOSTS`, or the dense
    backbone on the tiny ViT through it (``'dense'``) or beside it (``'dense_beside'``;
    ``kwargs`` may set ``wst`` / ``hst``). ``img_size`` builds it for another input
    size than its first one in :data:`SIZES`."""
    if img_size is None:
        img_size = SIZES[kind][0][0]
    if kind in ('dense', 'dense_beside'):
        kwargs.setdefault('hst', DENSE_HST)
        return DenseTunedViT(
            **_host_args('vit', img_size), tuners=tuners, host_grad=kind == 'dense', **kwargs
        )
    cls = {'eva02': TunedEVA02, 'sam': TunedSAMViT, 'swin': TunedSwinTransformer}.get(
        kind, TunedVisionTransformer
    )
    return cls(**_host_args(kind, img_size), tuners=tuners, **kwargs)


def build_dense(kind: str, host_grad: bool = True, **kwargs) -> nn.Module:
    """The dense backbone on the tiny ViT-like host ``kind`` (one of :data:`VIT_HOSTS`),
    with the tiny side network unless ``kwargs`` set ``hst``; inputs of
    :data:`DENSE_SIZES`."""
    if kind not in VIT_HOSTS:
        raise ValueError(f'no dense backbone on {kind!r}')
    kwargs.setdefault('hst', DENSE_HST)
    host = TunedEVA02 if kind == 'eva02' else TunedVisionTransformer
    cls = dense_backbone_for(host)
    return cls(**_host_args(kind, DENSE_SIZES[kind][0]), host_grad=host_grad, **kwargs)


#: inputs of the dense backbone on each ViT-like host: divisible by the patch and by 32
DENSE_SIZES = {'vit': (64, 96), 'dinov2': (224, 224), 'clip': (64, 96), 'eva02': (224, 224)}


def _host_args(kind: str, img_size: int) -> dict:
    """The constructor arguments of the tiny host ``kind`` (its class: :func:`build_host`)."""
    if kind == 'vit':
        return dict(arch=VIT_ARCH, img_size=img_size, patch_size=8)
    if kind == 'dinov2':
        return dict(
            arch=VIT_ARCH,
            img_size=img_size,
            patch_size=14,
            layer_scale_init_value=0.5,
            num_register_tokens=2,
        )
    if kind == 'eva02':
        return dict(
            arch=dict(VIT_ARCH, feedforward_channels=EVA_HIDDEN),
            img_size=img_size,
            patch_size=14,
            sub_ln=True,
        )
    if kind == 'sam':
        return dict(
            arch=dict(VIT_ARCH, global_attn_indexes=[1, 3]),
            img_size=img_size,
            patch_size=8,
            window_size=2,
            out_channels=32,
        )
    if kind == 'clip':
        return dict(
            arch=VIT_ARCH,
            img_size=img_size,
            patch_size=8,
            pre_norm=True,
            patch_cfg=dict(bias=False),
            norm_cfg=dict(type='LN', eps=1e-5),
        )
    return dict(
        arch=SWIN_ARCH,
        img_size=img_size,
        window_size=4,
        out_indices=(1,),
        drop_path_rate=0.0,
    )


def blocks(kind: str) -> list[tuple[int, int]]:
    """(width, MLP hidden width) of every block of the tiny host."""
    if kind == 'eva02':
        return [(32, EVA_HIDDEN)] * 4
    if kind != 'swin':
        return [(32, 64)] * 4
    return [(16, 64)] * 2 + [(32, 128)] * 2


def mlp_widths(kind: str) -> list[tuple[int, int, int]]:
    """(width, fc1's output, fc2's input) of every block: the hidden width twice, or
    for SwiGLU (EVA-02) gate and value from fc1 (2 H) and H into fc2."""
    if kind == 'eva02':
        return [(d, 2 * h, h) for d, h in blocks(kind)]
    return [(d, h, h) for d, h in blocks(kind)]


def registers(kind: str) -> int:
    """Register tokens of the tiny host."""
    return 2 if kind == 'dinov2' else 0


def patch_size(kind: str) -> int:
    """Patch side of the tiny host (Swin: its patch embedding's)."""
    return {'dinov2': 14, 'eva02': 14, 'swin': 4}.get(kind, 8)


def patch_dim(kind: str) -> int:
    return 16 if kind == 'swin' else 32


def final_dims(kind: str) -> list[int]:
    """Widths of the norms after the last block (SAM's blocks end without one)."""
    return [] if kind == 'sam' else [32]


def host_total(kind: str) -> int:
    return sum(p.numel() for p in build_host(kind, []).parameters())


def count_by_name(kind: str, predicate: Callable[[str], bool]) -> int:
    host = build_host(kind, [])
    return sum(p.numel() for n, p in host.named_parameters() if predicate(n))


def _is_bias(name: str) -> bool:
    return name.endswith('.bias')


def _is_norm(name: str) -> bool:
    parts = name.split('.')
    if name.startswith('channel_reduction.') and parts[1] in ('1', '3'):
        return True  # SAM's neck: conv, LayerNorm2d, conv, LayerNorm2d
    return len(parts) > 1 and parts[-2].startswith(('ln', 'norm', 'pre_norm'))


@dataclass
class Case:
    id: str
    tuners: list[dict]
    identity: bool
    mergeable: bool
    count: Callable[[str], int]
    hosts: tuple[str, ...] = HOSTS
    extra: dict = field(default_factory=dict)


def _ssf(kind: str) -> int:
    per_block = sum(2 * (3 * d + d + f1 + d + d + d) for d, f1, _ in mlp_widths(kind))
    return per_block + 2 * patch_dim(kind) + sum(2 * d for d in final_dims(kind))


CASES = [
    Case('linear_probe', [dict(type='mmwst.LinearProbe')], True, True, lambda k: 0),
    Case('full_finetune', [dict(type='mmwst.FullFineTune')], True, True, host_total),
    Case('bitfit', [dict(type='mmwst.BitFit')], True, True, lambda k: count_by_name(k, _is_bias)),
    Case('ln_tune', [dict(type='mmwst.LNTune')], True, True, lambda k: count_by_name(k, _is_norm)),
    Case('ssf', [dict(type='mmwst.SSF')], False, True, _ssf),
    Case(
        'lora_qv',
        [dict(type='mmwst.LoRA', rank=4)],
        True,
        True,
        lambda k: sum(2 * 4 * (d + d) for d, _ in blocks(k)),
    ),
    Case(
        'lora_all',
        [dict(type='mmwst.LoRA', rank=2, targets=('q', 'k', 'v', 'proj', 'fc1', 'fc2'))],
        True,
        True,
        lambda k: sum(2 * (4 * (d + d) + (d + f1) + (f2 + d)) for d, f1, f2 in mlp_widths(k)),
    ),
    Case(
        'adapter',
        [dict(type='mmwst.Adapter', bottleneck=4)],
        True,
        False,
        lambda k: sum(2 * (2 * d * 4 + 4 + d) for d, _ in blocks(k)),
    ),
    Case(
        'adaptformer',
        [dict(type='mmwst.AdaptFormer', bottleneck=8)],
        True,
        False,
        lambda k: sum(2 * d * 8 + 8 + d for d, _ in blocks(k)),
    ),
    Case(
        'vpt_shallow',
        [dict(type='mmwst.VPT', num_prompts=3, deep=False)],
        False,
        False,
        lambda k: 3 * blocks(k)[0][0],
        hosts=TOKEN_HOSTS,
    ),
    Case(
        'vpt_deep',
        [dict(type='mmwst.VPT', num_prompts=3)],
        False,
        False,
        lambda k: sum(3 * d for d, _ in blocks(k)),
        hosts=TOKEN_HOSTS,
    ),
]


def all_cases() -> list[Case]:
    """The baseline rows plus the ``CASES`` of every ``table_<method>.py`` module and of
    every ``test_<method>.py`` that defines them."""
    import glob
    import importlib.util
    import os.path as osp

    cases = list(CASES)
    here = osp.dirname(__file__)
    paths = glob.glob(osp.join(here, 'table_*.py')) + [
        path
        for path in glob.glob(osp.join(here, 'test_*.py'))
        if '\nCASES = ' in open(path, encoding='utf-8').read()
    ]
    for path in sorted(paths, key=osp.basename):
        spec = importlib.util.spec_from_file_location(osp.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases.extend(module.CASES)
    return cases


def perturb_tuners(model: nn.Module, seed: int = 0) -> None:
    """Move every trainable parameter away from its init (zero-init parts included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def assert_merge_round_trip(
    model: nn.Module, image: torch.Tensor, output: Callable | None = None
) -> None:
    """Merging keeps the output (to 1e-5), unmerging keeps it too and brings every weight
    back (to 1e-5 / 1e-6): nothing blown up by dividing by a scale or factor near zero.
    ``output(model, image)``: the tensor compared (default: the first output)."""
    output = output or (lambda m, x: m(x)[0])
    with model.full_state_dict():
        before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = output(model, image)
        model.merge_tuners()
        torch.testing.assert_close(output(model, image), expected, rtol=1e-5, atol=1e-5)
        model.unmerge_tuners()
        torch.testing.assert_close(output(model, image), expected, rtol=1e-5, atol=1e-5)
    with model.full_state_dict():
        after = model.state_dict()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=1e-5, atol=1e-6, msg=name)


class WithHead(nn.Module):
    """The backbone plus a trainable linear head, as in a classifier; the head reads
    every output map, pooled (one for a plain host, four for the dense backbone)."""

    def __init__(self, backbone: nn.Module, num_classes: int = 5) -> None:
        super().__init__()
        self.backbone = backbone
        widths = getattr(backbone, 'out_channels', (32,))  # the tiny hosts' width: 32
        widths = (widths,) if isinstance(widths, int) else widths  # SAM: its neck's
        self.head = nn.Linear(sum(widths), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [f.mean(dim=(2, 3)) if f.dim() == 4 else f for f in self.backbone(x)]
        return self.head(torch.cat(feats, dim=1))
