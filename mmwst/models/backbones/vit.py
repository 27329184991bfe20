"""A frozen mmpretrain Vision Transformer with composable tuners."""

from __future__ import annotations

import os.path as osp

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.models.utils.attention import MultiheadAttention
from torch import Tensor, nn

from ...registry import MODELS
from ..layers.tunable import make_tunable_attention
from ..tuners.base import BlockSpec, TokenContext
from .convert import load_vit_weights
from .host import TunableHostMixin
from .weights import adapt_pos_embed

#: DINOv2 hosts by name: mmpretrain's widths, with the release's patch size (14), image
#: size (518), layer scale and, for ViT-g, SwiGLU MLPs. Arguments given explicitly win.
DINOV2_ARCHS: dict[str, str] = {
    'dinov2-s': 'dinov2-s',
    'dinov2-small': 'dinov2-s',
    'dinov2-b': 'b',
    'dinov2-base': 'b',
    'dinov2-l': 'l',
    'dinov2-large': 'l',
    'dinov2-g': 'dinov2-g',
    'dinov2-giant': 'dinov2-g',
}


def _dinov2_defaults(kwargs: dict) -> None:
    """Turn a DINOv2 arch name into mmpretrain's arch plus the release's settings."""
    arch = kwargs.get('arch')
    if not isinstance(arch, str) or arch.lower() not in DINOV2_ARCHS:
        return
    kwargs['arch'] = DINOV2_ARCHS[arch.lower()]
    kwargs.setdefault('patch_size', 14)
    kwargs.setdefault('img_size', 518)
    kwargs.setdefault('layer_scale_init_value', 1e-5)
    if kwargs['arch'] == 'dinov2-g':
        kwargs.setdefault('layer_cfgs', dict(ffn_type='swiglu_fused'))


def file_layout(state: dict[str, Tensor]) -> dict:
    """What a converted ViT state dict says about the host it needs: layer scale,
    register tokens, a norm before the first block (CLIP), a patch-embedding bias and
    SwiGLU MLPs."""
    return dict(
        layer_scale=any(k.endswith(('attn.gamma1.weight', 'ffn.gamma2.weight')) for k in state),
        registers=int(state['reg_token'].shape[1]) if 'reg_token' in state else 0,
        pre_norm=any(k.startswith('pre_norm.') for k in state),
        patch_bias='patch_embed.projection.bias' in state,
        swiglu=any('.ffn.w12.' in k for k in state) or _packed_swiglu(state),
    )


def _packed_swiglu(state: dict[str, Tensor]) -> bool:
    """timm keeps a SwiGLU MLP's names (fc1 holds gate and value, fc2 reads half of
    it): fc1 is then twice as wide as fc2's input."""
    fc1, fc2 = (
        state.get('layers.0.ffn.layers.0.0.weight'),
        state.get('layers.0.ffn.layers.1.weight'),
    )
    return fc1 is not None and fc2 is not None and fc1.shape[0] == 2 * fc2.shape[1]


def _fill_from_file(kwargs: dict, layout: dict, num_register_tokens: int | None) -> int:
    """Set the host options the caller left unset from the file's layout; return the
    number of register tokens."""
    if layout['layer_scale'] and 'layer_scale_init_value' not in kwargs:
        kwargs['layer_scale_init_value'] = 1e-5  # any positive value: the file sets it
    if layout['pre_norm'] and 'pre_norm' not in kwargs:
        kwargs['pre_norm'] = True
    patch_cfg = dict(kwargs.get('patch_cfg') or {})
    if 'bias' not in patch_cfg:
        patch_cfg['bias'] = layout['patch_bias']
        kwargs['patch_cfg'] = patch_cfg
    if layout['swiglu'] and 'layer_cfgs' not in kwargs:
        kwargs['layer_cfgs'] = dict(ffn_type='swiglu_fused')
    return layout['registers'] if num_register_tokens is None else num_register_tokens


@MODELS.register_module()
class TunedVisionTransformer(TunableHostMixin, VisionTransformer):
    """mmpretrain ``VisionTransformer``, frozen, with a list of tuners.

    Parameter names are mmpretrain's, so mmpretrain checkpoints load as they are;
    tuners live under ``tuners.<i>``. Any input whose sides are multiples of the patch
    size works: position embeddings are interpolated to the input's patch grid.

    Extension points, in the order of the forward pass (each tuner's hooks run in list
    order):

    - module hooks on any host layer (see :class:`~mmwst.models.backbones.host.BlockSpec`),
      placed by the tuners at construction;
    - ``before_blocks(x, ctx)``: tokens ``[cls, patches]`` after the position embedding;
    - ``before_block(i, x, ctx)`` / ``after_block(i, x, ctx)`` around block ``i``;
    - ``after_blocks(x, ctx)``: after the last block, before the final norm.

    ``ctx`` (:class:`~mmwst.models.tuners.base.TokenContext`) carries the input image
    (for branch tuners), the patch grid and the number of tokens in front of the patch
    tokens.

    Args:
        tuners (list[dict]): Tuner configs, e.g. ``[dict(type='mmwst.LoRA', rank=8)]``.
            Defaults to no tuner (a frozen backbone: linear probing).
        pretrained (str, optional): Local file with the backbone weights: Google npz
            (original or AugReg), timm, MAE or mmpretrain; converted on load. Loaded by
            ``init_weights()``, and whenever an adapter-only checkpoint is loaded.
            Defaults to None (random weights; for tests).
        save_frozen (bool): Keep the frozen weights in ``state_dict()`` (and so in
            checkpoints). Defaults to False: checkpoints hold what was trained only.
        frozen_dtype (str, optional): ``'bf16'`` (or ``'fp16'``) holds the frozen weights
            in that type - half their memory - and runs the forward pass under autocast
            to it; what trains stays float32 and the outputs come back as float32.
            Defaults to None: everything in float32.
        with_cp (bool): Gradient checkpointing of the blocks during training: their
            activations are recomputed in the backward pass instead of stored, trading
            compute for memory. Defaults to False.
        out_type (str): mmpretrain's ``'cls_token'``, ``'featmap'``,
            ``'avg_featmap'``, ``'raw'``, or ``'avg_patch'``: the mean of the last
            block's patch tokens passed through the frozen final norm (WST, RLRR).
            Defaults to 'cls_token'.
        num_register_tokens (int, optional): Register tokens after the class token
            (DINOv2 with registers). Defaults to None: as many as the ``pretrained``
            file holds, else none.
        **kwargs: every other mmpretrain ``VisionTransformer`` argument (``arch``,
            ``img_size``, ``patch_size``, ``drop_path_rate``, ``out_indices``,
            ``layer_scale_init_value``, ``pre_norm``, ``patch_cfg``, ``layer_cfgs``...).
            ``arch`` also takes the DINOv2 names of :data:`DINOV2_ARCHS`. Layer scale,
            pre-norm, the patch bias and SwiGLU MLPs left unset are taken from the
            ``pretrained`` file (docs/hosts.md). Subclasses whose blocks differ pass
            ``block_factory``: ``index -> block``, called once per layer.

    Examples:
        >>> import torch
        >>> from mmwst.models.backbones import TunedVisionTransformer
        >>> arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        >>> model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8,
        ...                                tuners=[dict(type='mmwst.LoRA', rank=4)])
        >>> model(torch.rand(2, 3, 32, 48))[0].shape
        torch.Size([2, 32])
    """

    host_kind = 'vit'
    OUT_TYPES = VisionTransformer.OUT_TYPES | {'avg_patch'}

    def _build_host(
        self,
        *args,
        pretrained: str | None = None,
        out_type: str = 'cls_token',
        with_cp: bool = False,
        num_register_tokens: int | None = None,
        **kwargs,
    ) -> None:
        if args:  # mmpretrain's positional arch
            kwargs['arch'], args = args[0], args[1:]
        _dinov2_defaults(kwargs)
        block_factory = kwargs.pop('block_factory', None)
        cached = kwargs.pop('converted', None)  # a subclass that has read the file already
        if cached is None and isinstance(pretrained, str) and osp.isfile(pretrained):
            # the file decides what the caller left unset; read once, loaded later
            cached = self._convert_file(pretrained)
        if cached is not None:
            num_register_tokens = _fill_from_file(kwargs, file_layout(cached), num_register_tokens)
        registers = 0 if num_register_tokens is None else num_register_tokens
        if isinstance(registers, bool) or not isinstance(registers, int) or registers < 0:
            raise ValueError(
                f'num_register_tokens must be a non-negative integer, got {registers!r}'
            )
        super()._build_host(*args, out_type=out_type, **kwargs)
        if self.out_type == 'avg_patch' and not self.final_norm:
            raise ValueError(
                "out_type='avg_patch' normalises with the final norm; it needs final_norm=True"
            )
        self.num_register_tokens = registers
        self.reg_token = (
            nn.Parameter(torch.empty(1, registers, self.embed_dims).normal_(std=1e-6))
            if registers
            else None
        )
        if block_factory is not None:  # a host whose blocks differ (EVA-02)
            self.layers = nn.ModuleList(block_factory(i) for i in range(self.num_layers))
        self._cached_pretrained = cached
        self.with_cp = with_cp

    @staticmethod
    def _convert_file(path: str) -> dict[str, Tensor]:
        """The file's weights under this host's names (subclasses read other layouts)."""
        return load_vit_weights(path)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens in front of the patch tokens: the class token, then the register
        tokens (``num_extra_tokens`` counts the class token only, as the position
        embedding does)."""
        return self.num_extra_tokens + self.num_register_tokens

    # ---- host description ------------------------------------------------------------
    def _make_block_specs(self) -> list[BlockSpec]:
        specs = []
        for i, layer in enumerate(self.layers):
            if type(layer.attn) is MultiheadAttention:  # the same values, fewer kernels
                make_tunable_attention(layer.attn)
            specs.append(
                BlockSpec(
                    index=i,
                    stage=0,
                    block=layer,
                    dim=self.embed_dims,
                    num_heads=layer.attn.num_heads,
                    norm1=layer.norm1,  # mmpretrain's ln1; EVA-02's norm1
                    attn=layer.attn,
                    attn_branch=layer.attn,
                    qkv=layer.attn.qkv,
                    proj=layer.attn.proj,
                    norm2=layer.norm2,
                    ffn=layer.ffn,
                    **_mlp_layers(layer.ffn),
                )
            )
        return specs

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Width of each output (one per ``out_indices`` entry): the ViT width."""
        return tuple(self.embed_dims for _ in self.out_indices)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Stride of each output map (``out_type='featmap'``): the patch size."""
        return tuple(self.patch_size[0] for _ in self.out_indices)

    def final_norms(self) -> list[nn.Module]:
        return [self.ln1] if self.final_norm else []

    def _read_pretrained(self, path: str) -> dict[str, Tensor]:
        cached, self._cached_pretrained = self._cached_pretrained, None
        loaded = cached if cached is not None else self._convert_file(path)
        expected = self._host_state()
        if any('.ffn.w12.' in k for k in expected):  # timm packs SwiGLU as fc1 / fc2
            loaded = {_swiglu_name(k): v for k, v in loaded.items()}
        grid = self.patch_resolution
        return adapt_pos_embed(
            loaded, expected, num_extra_tokens=self.num_extra_tokens, dst_grid=tuple(grid)
        )

    def _describe_checkpoint(self, path: str) -> str:
        try:
            loaded = load_vit_weights(path)
        except (ValueError, OSError):
            return ''
        if 'pos_embed' not in loaded:
            return ''
        width = loaded['pos_embed'].shape[-1]
        layers = len({k.split('.')[1] for k in loaded if k.startswith('layers.')})
        ffn = loaded.get('layers.0.ffn.layers.0.0.weight')
        patch = loaded.get('patch_embed.projection.weight')
        known = {(192, 12): 'deit-t', (384, 12): 'deit-s', (768, 12): 'b', (1024, 24): 'l'}
        mine = (self.embed_dims, len(self.layers))
        own = self._host_state()
        if (width, layers) == mine and all(
            (loaded[k].shape if k in loaded else None) == (own[k].shape if k in own else None)
            for k in ('layers.0.ffn.layers.0.0.weight', 'patch_embed.projection.weight')
        ):
            return ''  # the same architecture: the other hints name what differs
        lines = [
            f'hint: the file holds a ViT of width {width} with {layers} layers'
            + (f', MLP {ffn.shape[0]}' if ffn is not None else '')
            + (f', patch {patch.shape[-1]}' if patch is not None else '')
            + f'; this backbone has width {mine[0]} with {mine[1]} layers.'
        ]
        if (width, layers) in known:
            lines.append(f"Build the backbone with arch='{known[(width, layers)]}' to use it.")
        else:
            lines.append(
                f'Build the backbone with arch=dict(embed_dims={width}, num_layers={layers}, '
                'num_heads=..., feedforward_channels=...) to use it.'
            )
        return ' '.join(lines)

    # ---- forward -----------------------------------------------------------------------
    def forward_host(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check_input(x)
        return self._walk_blocks(*self._embed_tokens(x))

    def _between_blocks(self, spec, x: Tensor, ctx: TokenContext, outs: list) -> Tensor:
        """The final norm after the last block (not with ``'avg_patch'``, which norms the
        mean), and an output for each index in ``out_indices``."""
        if spec.index == len(self.layers) - 1 and self.final_norm and self.out_type != 'avg_patch':
            x = self.ln1(x)
        if spec.index in self.out_indices:
            outs.append(self._format_output(x, ctx.patch_resolution))
        return x

    def _embed_tokens(self, x: Tensor) -> tuple[Tensor, TokenContext]:
        """Patch embedding, class token, position embedding (resized to the input's
        grid), register tokens, pre-norm: the tokens ``(B, prefix + h*w, D)`` before the
        tuners' ``before_blocks`` and the forward pass's :class:`TokenContext`."""
        image, batch = x, x.shape[0]
        x, grid = self.patch_embed(x)  # (B, h*w, D)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            grid,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens,
        )
        if self.reg_token is not None:  # after the class token, without a position
            cls = self.num_extra_tokens
            registers = self.reg_token.expand(batch, -1, -1)
            x = torch.cat((x[:, :cls], registers, x[:, cls:]), dim=1)
        x = self.pre_norm(self.drop_after_pos(x))
        ctx = TokenContext(
            image=image, patch_resolution=tuple(grid), num_prefix=self.num_prefix_tokens
        )
        return x, ctx

    def _format_output(self, x: Tensor, hw) -> Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, self.num_prefix_tokens :]  # registers are not patches
        if self.out_type == 'avg_patch':
            return self.ln1(patches.mean(dim=1))
        if self.out_type == 'avg_featmap':
            return self.ln2(patches.mean(dim=1))
        return patches.reshape(x.shape[0], *hw, -1).permute(0, 3, 1, 2)  # featmap


def _mlp_layers(ffn: nn.Module) -> dict[str, nn.Module]:
    """The MLP's layers for :class:`BlockSpec`: mmpretrain's ``FFN`` (fc1, GELU, fc2) or
    the SwiGLU MLP of DINOv2-g (``w12`` holds the gate and the value, ``w3`` projects
    back; its branch ends at ``w3``)."""
    if hasattr(ffn, 'w12'):
        return dict(mlp=ffn.w3, fc1=ffn.w12, fc2=ffn.w3)
    return dict(mlp=ffn.layers, fc1=ffn.layers[0][0], fc2=ffn.layers[1])


def _swiglu_name(key: str) -> str:
    return key.replace('.ffn.layers.0.0.', '.ffn.w12.').replace('.ffn.layers.1.', '.ffn.w3.')
