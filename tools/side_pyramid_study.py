"""Variants of the dense backbone for the study of why the side network's pyramid does
not train the shapes detector (docs/dense_modes.md, "Why the side network's pyramid
does not detect"). They are not part of the package: the study's configs
(``configs/demo/dense_modes/side_pyramid_study/``) import this file with
``custom_imports``, which works for ``python tools/train.py`` and ``tools/test.py``
(their folder is on ``sys.path``).

- :class:`ScaledMapsDenseViT`: each of the four maps multiplied by a constant (0 mutes a
  level; its stage still runs and feeds the next one);
- :class:`BridgeGainDenseViT`: the side network's bridges from the ViT initialised
  ``gain`` times larger, so that the bridged ViT features dominate every stage;
- :class:`MixedPyramidDenseViT`: per level, the side network's map, the map WST's
  own pyramid (:class:`~mmwst.models.layers.WSTPyramid`) makes from the same forward
  pass (the branch state and the last patch map) or zeros of the side map's shape, with
  the side network, its meta tokens and the trained ViT norms all running either way.
"""

from __future__ import annotations

import torch

from mmwst.models.backbones.dense_vit import DenseTunedViT
from mmwst.models.layers.wst_pyramid import WSTPyramid
from mmwst.registry import MODELS


@MODELS.register_module()
class ScaledMapsDenseViT(DenseTunedViT):
    """:class:`DenseTunedViT` whose output maps are multiplied by ``map_scales``."""

    def __init__(self, *args, map_scales=(1.0, 1.0, 1.0, 1.0), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if len(map_scales) != 4:
            raise ValueError(f'map_scales needs one factor per level, got {map_scales}')
        self.map_scales = tuple(float(s) for s in map_scales)

    def forward_host(self, x):
        maps = super().forward_host(x)
        return tuple(m * s for m, s in zip(maps, self.map_scales))


@MODELS.register_module()
class BridgeGainDenseViT(DenseTunedViT):
    """:class:`DenseTunedViT` with the ViT bridges' initial weights times ``bridge_gain``."""

    def __init__(self, *args, bridge_gain: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.side is None:
            raise ValueError('BridgeGainDenseViT needs the side network (hst)')
        self.bridge_gain = float(bridge_gain)

    def init_weights(self) -> None:
        first = not getattr(self, '_mmwst_init_done', False)
        super().init_weights()
        if first:
            with torch.no_grad():
                for bridge in self.side.bridges:
                    bridge.weight.mul_(self.bridge_gain)


@MODELS.register_module()
class MixedPyramidDenseViT(DenseTunedViT):
    """WST + HST through the ViT; per level (``mix``) the side network's map (``'side'``),
    WST's pyramid's (``'wst'``) of the same forward pass, or the side network's map times
    0 (``'zero'``: nothing reaches the FPN there)."""

    def __init__(self, *args, mix=('wst', 'wst', 'side', 'side'), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.side is None or self.wst is None or not self.host_grad:
            raise ValueError('MixedPyramidDenseViT needs WST and HST through the ViT')
        if len(mix) != 4 or set(mix) - {'wst', 'side', 'zero'}:
            raise ValueError(f"mix needs 'wst', 'side' or 'zero' for each of 4 levels, got {mix}")
        self.mix = tuple(mix)
        self.wst_pyramid = WSTPyramid(self.embed_dims)
        self._last = None

    def _between_blocks(self, spec, x, ctx, outs):
        if spec.index == len(self.layers) - 1:  # the last patch map X_L and WST's T_L
            patches = x[:, ctx.num_prefix :].unflatten(1, ctx.patch_resolution)
            self._last = (patches, ctx.state[self.wst])
        return super()._between_blocks(spec, x, ctx, outs)

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(
            w if m == 'wst' else s
            for m, s, w in zip(self.mix, self.side.channels, self.wst_pyramid.out_channels)
        )

    def init_weights(self) -> None:
        first = not getattr(self, '_mmwst_init_done', False)
        super().init_weights()
        if first:
            self.wst_pyramid.reset_parameters()

    def forward_host(self, x):
        side = super().forward_host(x)
        patches, bands = self._last
        wst = self.wst_pyramid(self.wst.branch.spatial(bands), patches, x.shape[-2:])
        picked = {'side': lambda s, w: s, 'wst': lambda s, w: w, 'zero': lambda s, w: s * 0.0}
        return tuple(picked[m](s, w) for m, s, w in zip(self.mix, side, wst))
