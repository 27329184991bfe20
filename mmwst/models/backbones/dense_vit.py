"""The dense backbone: frozen ViT + WST fine branch + HST-style side network."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.hst_side import HSTSide, SideState, hst_side_count
from ..layers.wst_branch import WSTBranch, wst_branch_count
from ..layers.wst_pyramid import WSTPyramid, wst_pyramid_count
from ..tuners.base import BaseTuner
from .eva02 import TunedEVA02
from .vit import TunedVisionTransformer

DEFAULT_WST = dict(rank=2, scale=1.0)
DEFAULT_HST = dict(channels=(64, 128, 256, 384), num_heads=(2, 4, 8, 12))


@MODELS.register_module()
class DenseTunedViT(TunedVisionTransformer):
    """Four NCHW maps at strides 4 / 8 / 16 / 32 from a frozen plain ViT (mmdet, mmseg).

    Our dense design (no reference code exists): a frozen ViT, WST's fine branch
    (:class:`~mmwst.models.layers.WSTBranch`) and HST's hierarchical side network
    (:class:`~mmwst.models.layers.HSTSide`), driven by one loop over the ViT's layers in
    :meth:`forward`. For an image ``(B, 3, H, W)``, a ViT of width D, patch size p
    (grid h x w) and L layers, per layer ``l``:

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
      still run and feed the last two. The detection configs use it: on the shapes
      detector the side network's own stride-4/8 maps do not train the RoI heads, WST's
      do (docs/dense_modes.md).

    Further tuners (``tuners``, e.g. LoRA) run their hooks around each block before WST
    and HST see the tokens.

    Two modes (``host_grad``):

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
        hst (dict, optional): HST side-network arguments (``channels``, ``num_heads``,
            ``mlp_ratio``, ``qkv_bias``, ``drop_path_rate``), or None. Defaults to widths
            (64, 128, 256, 384) and heads (2, 4, 8, 12).
        host_grad (bool): Back-propagate through the frozen ViT. Defaults to True.
        pyramid (str, optional): ``'side'``, ``'wst'`` or ``'mixed'`` (above). Defaults
            to ``'side'`` with HST and ``'wst'`` without.
        tuners (list[dict]): More tuners (``host_grad=True`` only). Defaults to none.
        **kwargs: :class:`TunedVisionTransformer` / mmpretrain ``VisionTransformer``
            arguments (``arch``, ``img_size``, ``patch_size``, ``pretrained``...).

    Attributes:
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
        super().__init__(*args, tuners=tuners, **kwargs)
        self.host_grad = bool(host_grad)
        dim, layers = self.embed_dims, len(self.layers)
        in_channels = self.patch_embed.projection.in_channels
        wst = dict(wst) if wst is not None else None
        self._hst_cfg = dict(hst or {})  # mlp_ratio and qkv_bias, for the count
        self.wst_scale = float(wst.pop('scale', 1.0)) if wst is not None else 0.0
        self.wst = (
            WSTBranch(in_channels, dim, self.patch_size, layers, **wst) if wst is not None else None
        )
        self.pyramid_mode = pyramid
        if hst is not None:
            self.side = HSTSide(
                dim,
                layers,
                **hst,
                meta_tokens=self.host_grad,
                branch_dims=dim // 4 if self.wst is not None else None,
                in_channels=in_channels,
            )
            self.pyramid = WSTPyramid(dim, fine_only=True) if pyramid == 'mixed' else None
        else:
            self.side = None
            self.pyramid = WSTPyramid(dim)
        self._freeze_host()  # again, now that the side network decides about the norms
        self._store_frozen()

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Widths of the four maps."""
        if self.pyramid_mode == 'mixed':
            return (*self.pyramid.out_channels, *self.side.channels[2:])
        if self.side is not None:
            return tuple(self.side.channels)
        return tuple(self.pyramid.out_channels)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Strides of the four maps relative to the input image: (4, 8, 16, 32)."""
        if self.pyramid_mode == 'mixed':
            return (*self.pyramid.out_strides, *self.side.strides[2:])
        if self.side is not None:
            return tuple(self.side.strides)
        return tuple(self.pyramid.out_strides)

    def dense_param_count(self) -> int:
        """Trainable parameters of the dense parts, from the widths alone (the tuners in
        ``tuners`` count their own): WST's branch
        (:func:`~mmwst.models.layers.wst_branch.wst_branch_count`), then the side network
        with its bridges (:func:`~mmwst.models.layers.hst_side.hst_side_count`; through
        the ViT with one meta token per layer and the ViT's LayerNorms, ``4 L D``) or
        the WST pyramid (:func:`~mmwst.models.layers.wst_pyramid.wst_pyramid_count`;
        ``pyramid='mixed'``: both, the WST pyramid's fine levels only)."""
        dim, layers, channels = self.embed_dims, len(self.layers), self.in_channels
        total = 0
        if self.wst is not None:
            total += wst_branch_count(channels, dim, self.patch_size, layers, self.wst.rank)
        if self.side is None:
            return total + wst_pyramid_count(dim)
        total += hst_side_count(
            dim,
            layers,
            self.side.channels,
            in_channels=channels,
            mlp_ratio=self._hst_cfg.get('mlp_ratio', 4.0),
            qkv_bias=self._hst_cfg.get('qkv_bias', True),
            num_meta=self.side.num_meta,
            branch_dims=dim // 4 if self.wst is not None else None,
        )
        if self.pyramid_mode == 'mixed':
            total += wst_pyramid_count(dim, fine_only=True)
        return total + (4 * layers * dim if self.host_grad else 0)

    def trained_host_parameters(self) -> list[nn.Parameter]:
        """The tuners' host parameters and, through the ViT with HST, the ViT's
        LayerNorms (``norm1``, ``norm2`` of every block), which HST trains."""
        return super().trained_host_parameters() + self._side_norms()

    def _side_norms(self) -> list[nn.Parameter]:
        if getattr(self, 'side', None) is None or not self.host_grad:
            return []
        return [p for spec in self.blocks for n in (spec.norm1, spec.norm2) for p in n.parameters()]

    def named_parts(self) -> list[tuple[str, list[nn.Parameter]]]:
        parts = super().named_parts()
        if self.wst is not None:
            parts.append(('dense: WST branch', list(self.wst.parameters())))
        if self.side is not None:
            side = [*self.side.parameters(), *self._side_norms()]
            parts.append(('dense: HST side network', side))
            if self.pyramid is not None:
                parts.append(('dense: WST pyramid, fine levels', list(self.pyramid.parameters())))
        else:
            parts.append(('dense: WST pyramid', list(self.pyramid.parameters())))
        return parts

    def init_weights(self) -> None:
        if getattr(self, '_mmwst_init_done', False):
            return
        for part in (self.wst, self.side, self.pyramid):
            if part is not None:
                part.reset_parameters()
        super().init_weights()

    # ---- forward -------------------------------------------------------------------------
    def forward_host(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check_input(x)
        image = x
        with nullcontext() if self.host_grad else torch.no_grad():
            tokens, ctx = self._embed_tokens(x)  # (B, prefix + h*w, D)
            tokens = self._run_hooks('before_blocks', tokens, ctx)
        grid, prefix = ctx.patch_resolution, ctx.num_prefix
        bands = self.wst.embed(image) if self.wst is not None else None  # T_0 = DWT(S_0)
        # the side network turns the branch's sub-bands into S_{l+1} itself, per stage
        side = SideState(branch_transform=self.wst.spatial if self.wst is not None else None)
        hooks = self._token_hooks()
        meta = self.side.num_meta if self.side is not None and self.host_grad else 0
        # the tokens between blocks as [prefix | patches] pieces (views of the block's
        # output, split once), or whole in `tokens` where they are the output itself
        pieces = None
        last = len(self.layers) - 1
        for spec in self.blocks:
            i = spec.index
            if hooks:
                tokens = torch.cat(pieces, dim=1) if pieces is not None else tokens
                pieces = None
                for tuner in self.tuners:
                    tokens = tuner.before_block(i, tokens, ctx)
            front, patches = pieces or (tokens[:, :prefix], tokens[:, prefix:])
            if self.wst is not None:  # W_l from T_l and X_l; T_{l+1} = W_l
                bands = self.wst.step(i, bands, _as_map(patches, grid))
            if meta:  # [M_l; prefix; patches]
                tokens = torch.cat([self.side.meta(i, patches), front, patches], dim=1)
            elif pieces is not None:
                tokens = torch.cat(pieces, dim=1)
            out = self._run_block(spec, tokens, ctx)
            if not self.host_grad:  # no feedback
                tokens, pieces, patches = out, None, out[:, prefix:]
            else:
                hw = out.shape[1] - meta - prefix
                key, front, patches = out.split([meta, prefix, hw], dim=1)
                tokens, pieces = None, (front, patches)
                if hooks:
                    tokens, pieces = torch.cat(pieces, dim=1), None
                    for tuner in self.tuners:
                        tokens = tuner.after_block(i, tokens, ctx)
                    front, patches = tokens[:, :prefix], tokens[:, prefix:]
                if bands is not None:  # WST's feedback into the ViT: X_{l+1}
                    delta = bands.flatten(1, 2).to(patches.dtype)  # (B, h*w, D)
                    patches = torch.add(patches, delta, alpha=self.wst_scale)
                    tokens, pieces = None, (front, patches)
            if self.side is not None and not self.host_grad:  # the class token's output
                side = self.side.step_tokens(side, i, image, tokens, 1, grid, bands)
            elif self.side is not None:  # m_l; F_l = X_{l+1}; S_{l+1} = IDWT(T_{l+1})
                side = self.side.step(side, i, image, key, _as_map(patches, grid), bands)
            if i == last and self.tuners:
                tokens = torch.cat(pieces, dim=1) if pieces is not None else tokens
                for tuner in self.tuners:
                    tokens = tuner.after_blocks(tokens, ctx)
                patches = tokens[:, prefix:]
        if self.pyramid_mode == 'side':
            return tuple(side.maps)
        branch = self.wst.spatial(bands)  # S_L = IDWT(W_{L-1})
        if self.pyramid_mode == 'mixed':  # WST's branch at strides 4, 8; the side's 16, 32
            return (*self.pyramid(branch, None, image.shape[-2:]), *side.maps[2:])
        return self.pyramid(branch, _as_map(patches, grid), image.shape[-2:])

    def _token_hooks(self) -> bool:
        """Whether a tuner in ``tuners`` reads or rewrites the tokens around the blocks."""
        return any(
            type(t).before_block is not BaseTuner.before_block
            or type(t).after_block is not BaseTuner.after_block
            for t in self.tuners
        )

    def _run_block(self, spec, tokens: Tensor, ctx) -> Tensor:
        """One frozen block: without autograd beside the ViT, checkpointed with
        ``with_cp`` in training."""
        if not self.host_grad:
            with torch.no_grad():
                return spec.block(tokens)
        return self._checkpointed_block(spec, tokens, ctx)


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


PYRAMIDS = ('side', 'wst', 'mixed')


def _check_pyramid(pyramid: str | None, wst: dict | None, hst: dict | None) -> str:
    """The pyramid to build (``None``: ``'side'`` with HST, else ``'wst'``), or a clear
    error where the tuners switched on cannot make it."""
    if pyramid is None:
        return 'side' if hst is not None else 'wst'
    if pyramid not in PYRAMIDS:
        raise ValueError(f'pyramid must be one of {PYRAMIDS}, got {pyramid!r}')
    needs = {'side': ('hst',), 'wst': ('wst',), 'mixed': ('wst', 'hst')}[pyramid]
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


def _as_map(patches: Tensor, grid: tuple[int, int]) -> Tensor:
    """Patch tokens ``(B, h*w, D)`` as a channels-last map ``(B, h, w, D)`` (a view)."""
    return patches.unflatten(1, grid)
