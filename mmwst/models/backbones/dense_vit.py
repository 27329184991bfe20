"""The dense backbone: frozen ViT + WST fine branch + HST-style side network."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.hst_side import HSTSide
from ..layers.vit_levels import ViTFineLevels, vit_levels_count
from ..layers.wst_branch import patch_map
from ..layers.wst_pyramid import WSTPyramid, wst_pyramid_count
from ..tuners.hst import HST
from ..tuners.wst import WST
from .eva02 import TunedEVA02
from .vit import TunedVisionTransformer

DEFAULT_WST = dict(rank=2, scale=1.0)
DEFAULT_HST = dict(channels=(64, 128, 256, 384), num_heads=(2, 4, 8, 12))


@MODELS.register_module()
class DenseTunedViT(TunedVisionTransformer):
    """Four NCHW maps at strides 4 / 8 / 16 / 32 from a frozen plain ViT (mmdet, mmseg).

    Our dense design (no reference code exists): a composition of a frozen ViT, the
    :class:`~mmwst.models.tuners.WST` tuner (its fine branch,
    :class:`~mmwst.models.layers.WSTBranch`) and the :class:`~mmwst.models.tuners.HST`
    tuner (its hierarchical side network, :class:`~mmwst.models.layers.HSTSide`) - the
    classification tuners' own classes, added as the host's parts after the user's
    ``tuners`` and driven by the host's one block walk
    (:meth:`~mmwst.models.backbones.host.TunableHostMixin._walk_blocks`); this class only
    picks their modes and assembles the four maps. For an image ``(B, 3, H, W)``, a ViT
    of width D, patch size p (grid h x w) and L layers, per layer ``l``:

    1. the patch tokens entering the layer are the patch map ``X_l`` ``(B, h, w, D)``
       (channels-last: a view of the tokens, no copy);
    2. WST (``wst``): ``W_l = branch.step(T_l, X_l)``, with the branch kept as sub-bands
       ``T_l = DWT(S_l)`` (``T_0`` from the image embedded at stride p/2, ``S_0``
       ``(B, D/4, 2h, 2w)``; ``T_{l+1} = DWT(IDWT(W_l)) = W_l``);
    3. the frozen block runs - with HST and ``host_grad=True`` on
       ``[M_l; cls; patches]``, one learned meta token in front;
    4. WST's feedback, ``host_grad=True`` only: the block's patch tokens get
       ``scale * W_l``; the result is ``X_{l+1}``, the patch map the side network reads
       as ``F_l`` and WST reads at the next layer;
    5. HST (``hst``): side block ``l`` reads the layer's key token (``m_l``, the meta
       token's output; with ``host_grad=False`` the class token's output), ``F_l`` and,
       with WST on, ``S_{l+1}``; every ``L/4`` layers a stage of widths ``C`` closes into
       a map at strides 4, 8, 16, 32 (default widths ``(64, 128, 256, 384)``).

    The four maps (``pyramid``):

    - ``'side'`` (the default with HST, as HST publishes it): the side network's four
      stages, widths ``C``;
    - ``'wst'`` (the only choice with ``hst=None``): the
      :class:`~mmwst.models.layers.WSTPyramid` of ``S_L`` and the last patch map, widths
      ``(D/4, D/4, D, D)``;
    - ``'mixed'`` (WST and HST): WST's branch at strides 4 and 8 (``S_L`` upsampled 2x
      by a transposed convolution, and ``S_L``), the side network's last two stages at
      16 and 32; widths ``(D/4, D/4, C_3, C_4)``. The side network's first two stages
      still run and feed the last two. The COCO configs use it: on the shapes
      detector the side network's own stride-4/8 maps do not train the RoI heads, WST's
      do (docs/dense_modes.md).
    - ``'vit'`` (HST; WST optional): the last block's patch map, as the tuners leave it,
      at strides 4 and 8 (:class:`~mmwst.models.layers.ViTFineLevels`: a trainable
      LayerNorm, and a 2x transposed convolution of it to ``D/2``), the side network's
      last two stages at 16 and 32; widths ``(D/2, D, C_3, C_4)``. The shapes demo's
      detector (patch 8) reads it: at score 0.5 it misses half as many objects as on
      ``'mixed'`` and gives a quarter of the false boxes (docs/dense_modes.md). At
      patch 16 both maps are upsampled from the stride-16 map.

    Further tuners (``tuners``, e.g. LoRA, Mona) come first in the walk: their hooks
    around each block run before WST's and HST's, and see HST's meta token counted in
    ``ctx.num_prefix`` while it is in the sequence, as on every host.

    Two modes (``host_grad``), which set the parts' modes (WST's ``feedback``, HST's
    ``key``):

    - ``True`` (through the ViT, as WST and HST are published): gradients flow through
      the frozen blocks to WST's feedback, HST's meta tokens and the ViT's LayerNorms,
      which HST trains. Memory and time are those of back-propagating through the ViT.
    - ``False`` (never through the ViT): the ViT runs without autograd and keeps no
      activations; the branch and the side network read its detached per-layer tokens
      and only they train. WST gives no feedback (the ViT computes exactly its frozen
      features), HST inserts no meta token (the class token's output of each layer
      takes its place as the side block's key) and the ViT's LayerNorms stay frozen.
      Memory stays close to the frozen forward's; a training step costs about a frozen
      forward plus the side parts.

    Args:
        wst (dict, optional): WST arguments (``rank``, ``scale``, ``wavelet``), or None
            to switch WST off. Defaults to ``dict(rank=2, scale=1.0)``.
        hst (dict, optional): HST arguments (``channels``, ``num_heads``,
            ``mlp_ratio``, ``qkv_bias``, ``drop_path_rate``, ``num_meta``,
            ``block_indices``), or None. Defaults to widths
            (64, 128, 256, 384) and heads (2, 4, 8, 12).
        host_grad (bool): Back-propagate through the frozen ViT. Defaults to True.
        pyramid (str, optional): ``'side'``, ``'wst'``, ``'mixed'`` or ``'vit'`` (above). Defaults
            to ``'side'`` with HST and ``'wst'`` without.
        tuners (list[dict]): More tuners (``host_grad=True`` only). Defaults to none.
        **kwargs: :class:`TunedVisionTransformer` / mmpretrain ``VisionTransformer``
            arguments (``arch``, ``img_size``, ``patch_size``, ``pretrained``...).

    Attributes:
        wst (WST | None): The WST part (its branch: ``wst.branch``).
        hst (HST | None): The HST part (its side network: ``hst.side``, also ``side``).
        out_channels (tuple[int, ...]): Widths of the four maps.
        out_strides (tuple[int, ...]): Their strides relative to the input, (4, 8, 16, 32).

    Trainable parameters (ViT-B/16, default widths, ``host_grad=True``): WST 83,160, side
    network with its bridges 10,564,672 (``python tools/count_params.py
    configs/wst_coco.py``); ``host_grad=False`` trains neither the 12 meta tokens
    (9,216) nor the ViT LayerNorms (36,864).

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import DenseTunedViT
        >>> arch = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
        >>> model = DenseTunedViT(arch=arch, img_size=64, patch_size=8, host_grad=False,
        ...                       hst=dict(channels=(8, 16, 16, 32), num_heads=(1, 2, 2, 4)))
        >>> [tuple(m.shape) for m in model(torch.rand(1, 3, 64, 96))]
        [(1, 8, 16, 24), (1, 16, 8, 12), (1, 16, 4, 6), (1, 32, 2, 3)]
        >>> model.out_channels, model.out_strides
        ((8, 16, 16, 32), (4, 8, 16, 32))
    """

    def __init__(
        self,
        *args,
        wst: dict | None = DEFAULT_WST,
        hst: dict | None = DEFAULT_HST,
        host_grad: bool = True,
        tuners: Sequence[dict] = (),
        pyramid: str | None = None,
        **kwargs,
    ) -> None:
        pyramid = _check_pyramid(pyramid, wst, hst)
        if wst is None and hst is None:
            raise ValueError(
                'DenseTunedViT needs WST, HST or both (wst=None and hst=None '
                'switch both off); for other tuners use TunedVisionTransformer '
                'with out_type="featmap" and mmwst.SimpleFeaturePyramid'
            )
        if not host_grad and tuners:
            raise ValueError(
                'host_grad=False never back-propagates through the ViT, so tuners inside it '
                f'({", ".join(str(t.get("type")) for t in tuners)}) could not learn; remove '
                'them or set host_grad=True'
            )
        kwargs.setdefault('out_type', 'featmap')
        # the two methods, as the tuners that drive them everywhere, after the user's
        wst_part = WST(**wst, feedback=host_grad) if wst is not None else None
        parts = [('wst', wst_part)] if wst_part is not None else []
        if hst is not None:
            hst = dict(hst)
            if 'num_meta' in hst:  # the side network's name for it
                hst['num_meta_tokens'] = hst.pop('num_meta')
            key = 'meta' if host_grad else 'cls'
            parts.append(('hst', HST(**hst, output='pyramid', key=key, branch=wst_part)))
        super().__init__(*args, tuners=tuners, parts=parts, **kwargs)
        for name in ('wst', 'hst'):
            if name not in self._modules:
                setattr(self, name, None)
        self.host_grad = bool(host_grad)
        self.pyramid_mode = pyramid
        if pyramid == 'mixed':
            self.pyramid = WSTPyramid(self.embed_dims, fine_only=True)
        elif pyramid == 'wst':
            self.pyramid = WSTPyramid(self.embed_dims)
        elif pyramid == 'vit':
            self.pyramid = ViTFineLevels(self.embed_dims)
        else:
            self.pyramid = None
        self._register_load_state_dict_pre_hook(_rename_fused_keys, with_module=True)

    @property
    def side(self) -> HSTSide | None:
        """HST's side network (``hst.side``), or None without HST."""
        return self.hst.side if self.hst is not None else None

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Widths of the four maps."""
        if self.pyramid_mode in ('mixed', 'vit'):
            return (*self.pyramid.out_channels, *self.hst.channels[2:])
        if self.pyramid_mode == 'side':
            return tuple(self.hst.channels)
        return tuple(self.pyramid.out_channels)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Strides of the four maps relative to the input image: (4, 8, 16, 32)."""
        if self.pyramid_mode in ('mixed', 'vit'):
            return (*self.pyramid.out_strides, *self.hst.out_strides[2:])
        if self.pyramid_mode == 'side':
            return tuple(self.hst.out_strides)
        return tuple(self.pyramid.out_strides)

    def dense_param_count(self) -> int:
        """Trainable parameters of the dense parts, from the widths alone (the tuners in
        ``tuners`` count their own): WST's count (:meth:`WST.param_count
        <mmwst.models.tuners.WST.param_count>`), HST's (:meth:`HST.param_count
        <mmwst.models.tuners.HST.param_count>`: the side network with its bridges and,
        through the ViT, one meta token per layer and the ViT's LayerNorms, ``4 L D``)
        and the WST pyramid's (:func:`~mmwst.models.layers.wst_pyramid.wst_pyramid_count`;
        ``pyramid='mixed'``: its fine levels only), or with ``pyramid='vit'`` the ViT's
        fine levels' (:func:`~mmwst.models.layers.vit_levels.vit_levels_count`)."""
        total = sum(part.param_count(self) for part in (self.wst, self.hst) if part is not None)
        if self.pyramid_mode == 'vit':
            total += vit_levels_count(self.embed_dims)
        elif self.pyramid_mode != 'side':
            total += wst_pyramid_count(self.embed_dims, fine_only=self.pyramid_mode == 'mixed')
        return total

    def named_parts(self) -> list[tuple[str, list[nn.Parameter]]]:
        parts = super().named_parts()
        if self.wst is not None:
            parts.append(('dense: WST branch', list(self.wst.parameters())))
        if self.hst is not None:
            side = [*self.hst.parameters(), *self.hst.host_parameters(self)]
            parts.append(('dense: HST side network', side))
        if self.pyramid_mode == 'mixed':
            parts.append(('dense: WST pyramid, fine levels', list(self.pyramid.parameters())))
        elif self.pyramid_mode == 'wst':
            parts.append(('dense: WST pyramid', list(self.pyramid.parameters())))
        elif self.pyramid_mode == 'vit':
            parts.append(('dense: ViT fine levels', list(self.pyramid.parameters())))
        return parts

    def init_weights(self) -> None:
        if getattr(self, '_mmwst_init_done', False):
            return
        for part in (self.wst, self.hst):  # each draws once (a second call is a no-op)
            if part is not None:
                part.init_weights()
        if self.pyramid is not None:
            self.pyramid.reset_parameters()
        super().init_weights()

    # ---- forward -------------------------------------------------------------------------
    def forward_host(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check_input(x)
        with nullcontext() if self.host_grad else torch.no_grad():
            tokens, ctx = self._embed_tokens(x)  # (B, prefix + h*w, D)
        # the one walk: the user's tuners, then WST (W_l, the feedback) and HST (meta
        # token, side blocks), block after block; HST's four maps come back in ctx.output
        out = self._walk_blocks(tokens, ctx)
        if self.pyramid_mode == 'side':
            return out
        if self.pyramid_mode == 'vit':  # the ViT's last map at strides 4, 8; the side's 16, 32
            last = patch_map(ctx.state.pop(LAST_TOKENS), ctx.num_prefix, ctx.patch_resolution)
            return (*self.pyramid(last, x.shape[-2:]), *out[2:])
        branch = self.wst.branch.spatial(ctx.state[self.wst])  # S_L = IDWT(W_{L-1})
        if self.pyramid_mode == 'mixed':  # WST's branch at strides 4, 8; the side's 16, 32
            return (*self.pyramid(branch, None, x.shape[-2:]), *out[2:])
        patches = patch_map(out[0], ctx.num_prefix, ctx.patch_resolution)
        return self.pyramid(branch, patches, x.shape[-2:])

    def _checkpointed_block(self, spec, tokens: Tensor, ctx) -> Tensor:
        """One frozen block: without autograd beside the ViT, else as every host runs
        it (recomputed in backward with ``with_cp``)."""
        if not self.host_grad:
            with torch.no_grad():
                return self._block_step(spec, tokens, ctx)
        return super()._checkpointed_block(spec, tokens, ctx)

    def _between_blocks(self, spec, x: Tensor, ctx, outs: list) -> Tensor:
        """No final norm: the last block's tokens, as the tuners leave them, are the
        output (the WST pyramid reads their patch map; with HST, whose maps are the walk's
        output, ``pyramid='vit'`` finds them in ``ctx.state``)."""
        if spec.index == len(self.layers) - 1:
            outs.append(x)
            if self.pyramid_mode == 'vit':
                ctx.state[LAST_TOKENS] = x
        return x


@MODELS.register_module()
class DenseTunedEVA02(DenseTunedViT, TunedEVA02):
    """The dense backbone of :class:`DenseTunedViT` on a frozen EVA-02
    (:class:`TunedEVA02`: rotary positions, SwiGLU MLPs, sub-LN): the same four maps, the
    same two modes and arguments; the host's arguments are EVA-02's (``arch`` such as
    ``'eva02-l'``, ``patch_size`` 14, ``rope_ref_grid``, ``sub_ln``, ``pretrained`` in
    timm's ``eva02_*`` layout). Through the ViT, HST's meta token sits in front of the
    class token, where the rotary embedding leaves tokens unrotated, as it leaves the
    class token.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import DenseTunedEVA02
        >>> arch = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
        >>> model = DenseTunedEVA02(arch=arch, img_size=56, patch_size=14,
        ...                         hst=dict(channels=(8, 16, 16, 32), num_heads=(1, 2, 2, 4)))
        >>> [tuple(m.shape) for m in model(torch.rand(1, 3, 224, 224))]
        [(1, 8, 56, 56), (1, 16, 28, 28), (1, 16, 14, 14), (1, 32, 7, 7)]
    """


def dense_backbone_for(host: str | type) -> type:
    """The dense backbone class for a host class (or its registered name,
    ``'mmwst.TunedEVA02'`` or ``'TunedEVA02'``): :class:`DenseTunedViT` for the plain
    ViT class (classic, DINOv2 with registers, CLIP-style), :class:`DenseTunedEVA02`
    for EVA-02. SAM's encoder and Swin are refused with the reason."""
    name = host if isinstance(host, str) else host.__name__
    name = name.split('.')[-1]
    if name == 'TunedSAMViT':
        raise ValueError(
            "SAM's image encoder has no dense backbone: it has no class token, whose "
            "per-layer output is the side network's key beside the ViT, and its windowed "
            "attention has no place for HST's meta token, the key through the ViT. Use "
            "TunedSAMViT's own neck map (out_type='featmap') with mmwst.SimpleFeaturePyramid."
        )
    if name == 'TunedSwinTransformer':
        raise ValueError(
            'Swin needs no dense backbone: its four stages are a pyramid at strides 4 to 32 '
            'already; use TunedSwinTransformer with out_indices=(0, 1, 2, 3) and any tuner '
            '(configs/mona/swin-b_coco.py)'
        )
    dense = {'TunedVisionTransformer': DenseTunedViT, 'TunedEVA02': DenseTunedEVA02}
    if name not in dense:
        raise ValueError(f'no dense backbone for {host!r}; hosts: {", ".join(dense)}')
    return dense[name]


PYRAMIDS = ('side', 'wst', 'mixed', 'vit')
#: where the walk leaves the last block's tokens for ``pyramid='vit'`` (``ctx.state``)
LAST_TOKENS = 'dense: last tokens'


def _check_pyramid(pyramid: str | None, wst: dict | None, hst: dict | None) -> str:
    """The pyramid to build (``None``: ``'side'`` with HST, else ``'wst'``), or a clear
    error where the tuners switched on cannot make it."""
    if pyramid is None:
        return 'side' if hst is not None else 'wst'
    if pyramid not in PYRAMIDS:
        raise ValueError(f'pyramid must be one of {PYRAMIDS}, got {pyramid!r}')
    needs = {'side': ('hst',), 'wst': ('wst',), 'mixed': ('wst', 'hst'), 'vit': ('hst',)}[pyramid]
    missing = [name for name in needs if {'wst': wst, 'hst': hst}[name] is None]
    if missing:
        raise ValueError(
            f'pyramid={pyramid!r} needs {" and ".join(n.upper() for n in needs)}, but '
            f'{" and ".join(m + "=None" for m in missing)} switches it off'
        )
    if pyramid == 'wst' and hst is not None:
        raise ValueError(
            "pyramid='wst' builds no side network's output, so HST would not train: set "
            "hst=None for WST's pyramid alone, or pyramid='mixed' for WST's fine levels "
            "with the side network's coarse ones"
        )
    return pyramid


def _rename_fused_keys(module, state_dict, prefix, *args) -> None:
    """Checkpoints written before WST and HST became the dense backbone's parts hold the
    branch under ``wst.`` and the side network under ``side.``; they are now
    ``wst.branch.`` and ``hst.side.``. Renamed on load, so such checkpoints resume."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        if rest.startswith('wst.') and not rest.startswith('wst.branch.'):
            state_dict[f'{prefix}wst.branch.{rest[4:]}'] = state_dict.pop(key)
        elif rest.startswith('side.'):
            state_dict[f'{prefix}hst.{rest}'] = state_dict.pop(key)
