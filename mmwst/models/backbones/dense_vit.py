"""The dense backbone: frozen ViT + WST fine branch + HST-style side network."""

from __future__ import annotations

from collections.abc import Sequence

from ...registry import MODELS
from .vit import TunedVisionTransformer

DEFAULT_WST = dict(rank=2, scale=1.0)
DEFAULT_HST = dict(channels=(64, 128, 256, 384), num_heads=(2, 4, 8, 12))


@MODELS.register_module()
class DenseTunedViT(TunedVisionTransformer):
    """Four NCHW maps at strides 4 / 8 / 16 / 32 from a frozen plain ViT (mmdet, mmseg).

    Our dense design (design.md, decision 6); no reference code exists. Information flow
    for an image ``(B, 3, H, W)`` and a ViT of width D and patch size p (grid h x w):

    1. The frozen ViT runs as usual on ``[cls; patches]``; HST prepends one meta token
       per layer (``M_l``) and trains the blocks' LayerNorms.
    2. WST (``wst``) embeds the image at stride p/2 (``S_0``: ``(B, D/4, 2h, 2w)``) and,
       at every layer ``l``, mixes ``DWT(S_l)`` with the layer's patch tokens through a
       rank-r bottleneck ``W_l``, feeds ``s * W_l`` back into the ViT tokens and carries
       ``S_{l+1} = IDWT(W_l)`` on.
    3. The HST side network (``hst``; widths C = (64, 128, 256, 384) by default) starts
       from a stride-4 convolutional stem on the image; its stage s (strides 4/8/16/32)
       is driven by layers ``l`` of the s-th quarter of the ViT: each side block
       cross-attends from its tokens to ``[g_l; t_l]`` (the layer's meta-token output
       through a shared bridge, and the mean of the bridged patch tokens), then adds the
       fine-grained injection ``f_l`` (the layer's patch tokens, bridged and resized to
       the stage grid) plus, with WST on, ``Linear_s(resize(S_{l+1}))``.
    4. Each stage ends with a LayerNorm and is emitted as a map: ``(B, C_s, H/4,
       W/4) ... (B, C_4, H/32, W/32)``.

    Switching parts off: ``hst=None`` keeps WST and emits
    ``mmwst.WSTPyramid`` maps (``S_L`` at stride 8, its 2x upsampling at 4, the ViT map at
    16, pooled at 32; widths ``(D/4, D/4, D, D)``); ``wst=None`` keeps the side network
    alone. Any input whose sides are multiples of the patch size works (position
    embeddings and the side network follow the input). Further tuners (e.g. LoRA) can be
    added through ``tuners``; they run before WST and HST.

    Args:
        wst (dict, optional): ``mmwst.WST`` arguments (``rank``, ``scale``, ``wavelet``),
            or None to switch WST off. Defaults to ``dict(rank=2, scale=1.0)``.
        hst (dict, optional): ``mmwst.HST`` arguments (``channels``, ``num_heads``,
            ``drop_path_rate``...), or None. Defaults to widths (64, 128, 256, 384) and
            heads (2, 4, 8, 12).
        tuners (list[dict]): More tuners. Defaults to none.
        **kwargs: :class:`TunedVisionTransformer` / mmpretrain ``VisionTransformer``
            arguments (``arch``, ``img_size``, ``patch_size``, ``pretrained``...).

    Trainable parameters (ViT-B/16, default widths): printed by
    ``python tools/count_params.py configs/wst_coco.py`` and asserted in the tests.
    """

    def __init__(
        self,
        *args,
        wst: dict | None = DEFAULT_WST,
        hst: dict | None = DEFAULT_HST,
        tuners: Sequence[dict] = (),
        **kwargs,
    ) -> None:
        if wst is None and hst is None:
            raise ValueError(
                'DenseTunedViT needs WST, HST or both (wst=None and hst=None '
                'switch both off); for other tuners use TunedVisionTransformer '
                'with out_type="featmap" and mmwst.SimpleFeaturePyramid'
            )
        dense = []
        if wst is not None:
            dense.append(dict(type='mmwst.WST', **wst))
        if hst is not None:
            dense.append(
                dict(type='mmwst.HST', **hst, output='pyramid', fine_branch=wst is not None)
            )
        else:
            dense.append(dict(type='mmwst.WSTPyramid'))
        kwargs.setdefault('out_type', 'featmap')
        super().__init__(*args, tuners=[*tuners, *dense], **kwargs)

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Widths of the four output maps."""
        last = self.tuners[-1]
        return tuple(last.channels) if hasattr(last, 'side') else tuple(last.out_channels)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Strides of the four output maps (HST's side network or WSTPyramid)."""
        return tuple(self.tuners[-1].out_strides)
