"""What every tunable host backbone shares: tuners, freezing, checkpoints, merging.

:class:`TunableHostMixin` is mixed into subclasses of mmpretrain's
``VisionTransformer`` and ``SwinTransformer``. It

* builds the ``tuners`` list and lets each tuner attach to the host (:class:`BlockSpec`
  describes each block's layers, so tuners never look up names);
* freezes the host structurally: every host parameter gets ``requires_grad=False``
  except those a tuner declares through ``host_parameters`` - membership by module
  ownership, not name matching - and ``train()`` never changes that;
* keeps checkpoints small: ``state_dict()`` leaves out the frozen host (unless
  ``save_frozen=True``), and loading such a checkpoint first fills the frozen host from
  the ``pretrained`` file, or fails naming what is missing;
* loads ``pretrained`` weights from a local file and refuses missing or mis-shaped
  keys instead of leaving a random "frozen" backbone;
* merges and unmerges mergeable tuners;
* walks the blocks (:meth:`TunableHostMixin._walk_blocks`), once for every host and
  every use (classification, and the dense backbone's WST and HST): each tuner's hooks
  around each block, the checks on the tokens the tuners add, gradient
  checkpointing and a tuner's replacement of the output. A host supplies only its own
  block step (:meth:`~TunableHostMixin._block_step`) and what it does between blocks
  (:meth:`~TunableHostMixin._between_blocks`: outputs, final norms, downsampling).
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ...registry import MODELS
from ..tuners.base import BaseTuner, BlockSpec, TokenContext, UnsupportedHostError
from .weights import check_state_dict

TUNERS_ATTR = 'tuners'


def refuse_frozen_stages(kwargs: Mapping) -> None:
    """mmpretrain's ``frozen_stages`` has no meaning for a tuned host: refuse it."""
    if kwargs.get('frozen_stages', -1) != -1:
        raise ValueError(
            'frozen_stages is not used: the whole host is frozen and tuners '
            'choose what trains; remove frozen_stages from the config'
        )


class TunableHostMixin:
    """Lifecycle of a frozen host with tuners. See the module docstring.

    The constructor is shared: it takes the tuner arguments (``tuners``, ``pretrained``,
    ``save_frozen``, ``frozen_dtype``, and ``parts`` from a subclass), refuses
    ``frozen_stages``, has the host built by :meth:`_build_host` (by default the
    mmpretrain class's own constructor with every other argument) and then attaches the
    tuners: first the user's ``tuners`` (under ``tuners.<i>``), then the ``parts``, the
    tuners a host class adds itself (the dense backbone's WST and HST), each under its
    own name. The blocks' walk runs the hooks of both, the user's first; the host is
    frozen once, after both, so that what counts as the host is everything built before
    them. Subclasses override :meth:`_build_host` where
    they prepare arguments or finish the host, and implement :meth:`_make_block_specs`,
    :meth:`final_norms`, :meth:`_read_pretrained`, :meth:`_block_step` (where a block
    takes more than the tokens) and :meth:`_between_blocks`.
    """

    host_kind: str = ''  # 'vit', 'swin' or 'sam'
    #: Why the host needs every token on its patch grid (SAM's windows), or '' where
    #: tuners may insert tokens as long as they remove them before the blocks end.
    grid_tokens_only: str = ''
    #: Gradient checkpointing of the blocks in training (hosts that offer ``with_cp``).
    with_cp: bool = False

    # ---- construction ----------------------------------------------------------------
    def __init__(
        self,
        *args,
        tuners: Sequence[dict] = (),
        pretrained: str | None = None,
        save_frozen: bool = False,
        frozen_dtype: str | None = None,
        parts: Sequence[tuple[str, BaseTuner]] = (),
        **kwargs,
    ) -> None:
        refuse_frozen_stages(kwargs)
        self._build_host(*args, pretrained=pretrained, **kwargs)
        self._setup_tuners(tuners, pretrained, save_frozen, frozen_dtype, parts)

    def _build_host(self, *args, pretrained: str | None = None, **kwargs) -> None:
        """Build the frozen host from the mmpretrain class's arguments (``pretrained``:
        the file, for hosts that read what the caller left unset from it)."""
        super().__init__(*args, **kwargs)

    def _setup_tuners(
        self,
        tuners,
        pretrained: str | None,
        save_frozen: bool,
        frozen_dtype=None,
        parts: Sequence[tuple[str, BaseTuner]] = (),
    ) -> None:
        if pretrained is not None and not isinstance(pretrained, str):
            raise TypeError(f'pretrained must be a local file path or None, got {pretrained!r}')
        self.pretrained = pretrained
        self.save_frozen = save_frozen
        self.frozen_dtype = _frozen_dtype(frozen_dtype)
        self._pretrained_loaded = False
        self._full_state = False
        _python_drop_rates(self)
        self.blocks = self._make_block_specs()
        self._walk_tuners: tuple[BaseTuner, ...] = ()
        # everything registered so far belongs to the host
        self._host_param_names = tuple(name for name, _ in self.named_parameters())
        self._host_buffer_names = tuple(name for name, _ in self.named_buffers())

        if isinstance(tuners, dict):
            tuners = [tuners]
        built = nn.ModuleList()
        for cfg in tuners or ():
            tuner = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
            if not isinstance(tuner, BaseTuner):
                raise TypeError(
                    f'{type(tuner).__name__} (from {cfg!r}) is not a tuner; tuners must '
                    'subclass mmwst.models.tuners.BaseTuner'
                )
            if self.host_kind not in tuner.supported_hosts:
                raise UnsupportedHostError(
                    f'{type(tuner).__name__} runs on {" or ".join(tuner.supported_hosts)} '
                    f'hosts, but {type(self).__name__} is a {self.host_kind!r} host. '
                    f'{tuner.host_reason}'
                )
            tuner.build(self)
            built.append(tuner)
        _refuse_contradictions(built)
        setattr(self, TUNERS_ATTR, built)
        for name, part in parts:  # chosen by the host class: no host-kind check
            part.build(self)
            setattr(self, name, part)
        #: every tuner whose hooks the walk runs, in order: the user's, then the parts
        self._walk_tuners = (*built, *(part for _, part in parts))
        self._freeze_host()
        self._store_frozen()
        self._register_state_dict_hook(_drop_frozen_from_state_dict)
        self._register_load_state_dict_pre_hook(self._fill_frozen_before_load)

    def _make_block_specs(self) -> list[BlockSpec]:
        raise NotImplementedError

    def final_norms(self) -> list[nn.Module]:
        """LayerNorms applied to the last blocks' output (ViT: ``ln1``)."""
        raise NotImplementedError

    def merging_layers(self) -> list[nn.Linear]:
        """The Linear layers between stages (Swin's patch-merging reductions, in stage
        order); none on a single-stage host such as the ViT."""
        return []

    def _read_pretrained(self, path: str) -> dict[str, Tensor]:
        raise NotImplementedError

    @property
    def patch_size(self) -> tuple[int, int]:
        return tuple(self.patch_embed.projection.stride)

    @property
    def in_channels(self) -> int:
        """Image channels the patch embedding reads."""
        return self.patch_embed.projection.in_channels

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f'expected images of shape (B, C, H, W), got {tuple(x.shape)}')
        ph, pw = self.patch_size
        if x.shape[-2] % ph or x.shape[-1] % pw:
            raise ValueError(
                f'input size {tuple(x.shape[-2:])} is not divisible by the patch size '
                f'{(ph, pw)}; resize or pad the images (e.g. a Pad transform with '
                f'size_divisor={ph})'
            )

    # ---- the walk over the blocks -------------------------------------------------------
    def _walk_blocks(self, x: Tensor, ctx: TokenContext) -> tuple[Tensor, ...]:
        """Run the blocks on the tokens ``x`` ``(B, prefix + h*w, D)`` entering the first
        one: every tuner's ``before_blocks``, then per block its ``before_block``, the
        host's block (recomputed in backward with ``with_cp``), its ``after_block`` and
        the host's :meth:`_between_blocks`; after the last block ``after_blocks``. Tokens
        a tuner inserts must be gone when the blocks end. Returns the host's outputs, or
        the output a tuner put in ``ctx.output``."""
        prefix = ctx.num_prefix
        outs: list[Tensor] = []
        x = self._run_hooks('before_blocks', x, ctx)
        last = len(self.blocks) - 1
        for spec in self.blocks:
            x = self._run_hooks('before_block', x, ctx, spec.index)
            x = self._checkpointed_block(spec, x, ctx)
            x = self._run_hooks('after_block', x, ctx, spec.index)
            if spec.index == last:
                x = self._run_hooks('after_blocks', x, ctx)
                if ctx.num_prefix != prefix:
                    raise RuntimeError(
                        f'the tuners left {ctx.num_prefix - prefix} inserted tokens in the '
                        'sequence after the last block; a tuner that inserts tokens must '
                        'remove them again (and lower ctx.num_prefix) by after_blocks'
                    )
            x = self._between_blocks(spec, x, ctx, outs)
        return ctx.output if ctx.output is not None else tuple(outs)

    def _run_hooks(self, hook: str, x: Tensor, ctx: TokenContext, *index: int) -> Tensor:
        """Every tuner's ``hook`` in list order; on a host that needs every token on its
        grid, a hook that changes the number of tokens stops the pass."""
        for tuner in self._walk_tuners:
            out = getattr(tuner, hook)(*index, x, ctx)
            if self.grid_tokens_only and out.shape[1] != x.shape[1]:
                raise RuntimeError(
                    f'{type(tuner).__name__} changed the number of tokens ({x.shape[1]} -> '
                    f'{out.shape[1]}) in {hook}: {self.grid_tokens_only}'
                )
            x = out
        return x

    def _checkpointed_block(self, spec: BlockSpec, x: Tensor, ctx: TokenContext) -> Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            # recompute the block in backward instead of storing its activations
            return checkpoint(self._block_step, spec, x, ctx, use_reentrant=False)
        return self._block_step(spec, x, ctx)

    def _block_step(self, spec: BlockSpec, x: Tensor, ctx: TokenContext) -> Tensor:
        """The host's block ``spec`` on the token sequence ``x`` (same shape out)."""
        return spec.block(x)

    def _between_blocks(
        self, spec: BlockSpec, x: Tensor, ctx: TokenContext, outs: list[Tensor]
    ) -> Tensor:
        """What the host does after block ``spec`` and its tuners' hooks: append its
        outputs to ``outs``, apply final norms, change the grid (``ctx``); returns the
        tokens the next block reads."""
        raise NotImplementedError

    # ---- freezing --------------------------------------------------------------------
    def host_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        params = dict(self.named_parameters())
        for name in self._host_param_names:
            yield name, params[name]

    def host_modules(self) -> Iterator[nn.Module]:
        """Every module of the host (the tuners, parts and their sub-modules excluded)."""
        tuner_modules = {id(m) for t in self._walk_tuners for m in t.modules()}
        for module in self.modules():
            if id(module) not in tuner_modules:
                yield module

    def trained_host_parameters(self) -> list[nn.Parameter]:
        """The host's own parameters that train (those the tuners and parts declare)."""
        return [p for tuner in self._walk_tuners for p in tuner.host_parameters(self)]

    def _freeze_host(self) -> None:
        trained = {id(p) for p in self.trained_host_parameters()}
        for _, param in self.host_named_parameters():
            param.requires_grad_(id(param) in trained)
        for tuner in self._walk_tuners:
            for param in tuner.parameters():
                param.requires_grad_(True)

    def _store_frozen(self) -> None:
        """Hold the frozen host parameters in ``frozen_dtype`` (half their memory in
        bf16); what trains stays in float32, and so does a frozen parameter of a
        normalisation layer another of whose parameters trains (BitFit's LayerNorms: the
        weight beside a trained bias), since a norm's weight and bias must share a type
        and autocast does not cast them on every device."""
        if self.frozen_dtype is None:
            return
        kept = {
            id(param)
            for module in self.host_modules()
            if isinstance(module, NORM_LAYERS)
            and any(p.requires_grad for p in module.parameters(recurse=False))
            for param in module.parameters(recurse=False)
        }
        for _, param in self.host_named_parameters():
            trained = param.requires_grad or id(param) in kept
            dtype = torch.float32 if trained else self.frozen_dtype
            if param.dtype != dtype:
                param.data = param.data.to(dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """The host's forward pass (:meth:`forward_host`). With ``frozen_dtype``, it runs
        under autocast to that type - the frozen weights are read as they are stored,
        the trainable ones cast per operation - and returns the input's float type."""
        if self.frozen_dtype is None:
            return self.forward_host(x)
        with torch.autocast(x.device.type, dtype=self.frozen_dtype):
            outs = self.forward_host(x)
        return tuple(o.to(x.dtype) if o.is_floating_point() else o for o in outs)

    def forward_host(self, x: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def frozen_host_keys(self) -> list[str]:
        """State-dict keys of the frozen host (left out of checkpoints)."""
        params = dict(self.named_parameters())
        keys = [n for n in self._host_param_names if not params[n].requires_grad]
        return keys + list(self._host_buffer_names)

    def train(self, mode: bool = True):
        super().train(mode)  # mmpretrain backbones do not return self
        return self

    # ---- checkpoints -------------------------------------------------------------------
    @contextmanager
    def full_state_dict(self):
        """Within this context ``state_dict()`` includes the frozen host."""
        previous, self._full_state = self._full_state, True
        try:
            yield self
        finally:
            self._full_state = previous

    def _fill_frozen_before_load(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        missing = [k for k in self.frozen_host_keys() if prefix + k not in state_dict]
        if not missing:
            return
        if self.pretrained is None:
            raise ValueError(
                f'the checkpoint being loaded holds only the tuned parameters of '
                f'{type(self).__name__} ({len(missing)} frozen keys are absent, e.g. '
                f'{prefix}{missing[0]}), and the backbone has no `pretrained` path to load '
                'the frozen weights from. Set model.backbone.pretrained to the local file '
                'the model was trained from.'
            )
        # the frozen host already holds the file's weights (they never train): no re-read
        base = self._host_state() if self._pretrained_loaded else self._pretrained_state()
        for key in missing:
            state_dict[prefix + key] = base[key]

    def _pretrained_state(self) -> dict[str, Tensor]:
        """The converted, verified ``pretrained`` weights of the host."""
        if not osp.isfile(self.pretrained):
            raise FileNotFoundError(
                f'pretrained weights {self.pretrained!r} not found: the frozen backbone '
                'is loaded from this local file (nothing is downloaded). Put the file '
                'there or set model.backbone.pretrained to where it is.'
            )
        expected = self._host_state()
        try:
            loaded = self._read_pretrained(self.pretrained)
            check_state_dict(expected, loaded, prefix_hint='backbone.')
        except ValueError as err:
            raise ValueError(
                f'the pretrained file {self.pretrained} does not fit this '
                f'{type(self).__name__}: {err}\n{self._describe_checkpoint(self.pretrained)}'
            ) from err
        return {k: loaded[k] for k in expected}

    def _describe_checkpoint(self, path: str) -> str:
        """What architecture a checkpoint holds, to say how to build a fitting host."""
        return ''

    def _host_state(self) -> dict[str, Tensor]:
        """The host's own entries of the full state dict (no tuner, no added module)."""
        with self.full_state_dict():
            state = nn.Module.state_dict(self)
        host = {*self._host_param_names, *self._host_buffer_names}
        return {k: v for k, v in state.items() if k in host}

    def named_parts(self) -> list[tuple[str, list[nn.Parameter]]]:
        """The trainable parts for parameter reports: each tuner with the host
        parameters it trains. Subclasses with parts of their own add them."""
        return [
            (f'tuner {i}: {type(t).__name__}', [*t.parameters(), *t.host_parameters(self)])
            for i, t in enumerate(self.tuners)
        ]

    def load_pretrained(self) -> None:
        """Copy the ``pretrained`` file's weights into the host (strict, verified)."""
        base = self._pretrained_state()
        with torch.no_grad():
            missing, unexpected = nn.Module.load_state_dict(self, base, strict=False)
        assert not unexpected, unexpected
        self._pretrained_loaded = True
        print_log(
            f'loaded the frozen {type(self).__name__} from {self.pretrained}', logger='current'
        )

    def init_weights(self) -> None:
        if getattr(self, '_mmwst_init_done', False):
            return  # a second call changes nothing
        super().init_weights()
        if self.pretrained is not None:
            self.load_pretrained()
        self._mmwst_init_done = True

    # ---- merging -----------------------------------------------------------------------
    def merge_tuners(self) -> None:
        """Fold every tuner into the host weights (all must be mergeable)."""
        blocking = [type(t).__name__ for t in self.tuners if not t.mergeable]
        if blocking:
            raise ValueError(f'cannot merge: {", ".join(blocking)} is not mergeable')
        for tuner in self.tuners:
            if not tuner.merged:
                with torch.no_grad():
                    tuner.merge(self)
                tuner.merged = True
                self._pretrained_loaded = False  # the host now differs from the file

    def unmerge_tuners(self) -> None:
        for tuner in reversed(self.tuners):
            if tuner.merged:
                with torch.no_grad():
                    tuner.unmerge(self)
                tuner.merged = False


#: Layers whose weight and bias one operator reads together, in one type.
NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)

_FROZEN_DTYPES = {'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16, 'fp16': torch.float16,
                  'float16': torch.float16}  # yapf: disable


def _frozen_dtype(value) -> torch.dtype | None:
    """``frozen_dtype`` as a torch dtype: None (float32), 'bf16' or 'fp16'."""
    if value is None or value in ('fp32', 'float32', torch.float32):
        return None
    if isinstance(value, torch.dtype) and value in _FROZEN_DTYPES.values():
        return value
    if isinstance(value, str) and value.lower() in _FROZEN_DTYPES:
        return _FROZEN_DTYPES[value.lower()]
    raise ValueError(
        f"frozen_dtype must be None (float32), 'bf16' or 'fp16', got {value!r}; bf16 halves "
        'the frozen weights and keeps float32 range (fp16 only where the hardware lacks bf16)'
    )


def _refuse_contradictions(tuners: Sequence[BaseTuner]) -> None:
    """A tuner that must be alone (``BaseTuner.alone``) next to any other one."""
    if len(tuners) < 2:
        return
    for tuner in tuners:
        if tuner.alone:
            others = ', '.join(type(t).__name__ for t in tuners if t is not tuner)
            raise ValueError(
                f'{type(tuner).__name__} cannot be combined with {others}: {tuner.alone}. '
                f'Keep only one of them in model.backbone.tuners.'
            )


def _drop_frozen_from_state_dict(
    module: TunableHostMixin, state_dict: Mapping, prefix: str, local_metadata
) -> None:
    if module.save_frozen or module._full_state:
        return
    for key in module.frozen_host_keys():
        state_dict.pop(prefix + key, None)


def _python_drop_rates(module: nn.Module) -> None:
    """Give every stochastic-depth layer its rate as a Python float. mmpretrain's hosts
    hand each block's DropPath a numpy scalar (from ``np.linspace``), and mmcv's
    ``drop_prob == 0.`` on one is a data-dependent branch to ``torch.compile``: a graph
    break twice a block. A float gives the same rate and lets the model compile whole."""
    for child in module.modules():
        rate = getattr(child, 'drop_prob', None)
        if rate is not None and type(rate) is not float:  # np.float64 is a float subclass
            child.drop_prob = float(rate)
