"""Convert pretrained Vision Transformer weights to mmpretrain ``VisionTransformer`` names.

mmwst tunes frozen backbones built from mmpretrain 1.2's ``VisionTransformer``, so a
pretrained checkpoint has to use its parameter names::

    patch_embed.projection.{weight,bias}       cls_token       pos_embed
    pre_norm.{weight,bias}                     (only for ``pre_norm=True``, e.g. CLIP)
    layers.{i}.ln1.{weight,bias}               layers.{i}.ln2.{weight,bias}
    layers.{i}.attn.qkv.{weight,bias}          fused (3 * D, D), rows ordered [q; k; v]
    layers.{i}.attn.proj.{weight,bias}
    layers.{i}.attn.gamma1.weight              (only with layer scale)
    layers.{i}.ffn.layers.0.0.{weight,bias}    first MLP layer (fc1)
    layers.{i}.ffn.layers.1.{weight,bias}      second MLP layer (fc2)
    layers.{i}.ffn.gamma2.weight               (only with layer scale)
    ln1.{weight,bias}                          final norm (``final_norm=True``)

The functions here read four layouts and return such a state dict:

* ``'npz'``: Google's JAX checkpoints (``vit_jax`` releases such as ``ViT-B_16.npz``,
  the AugReg files and ``big_vision`` exports). Blocks are found by pattern, so both
  ``LayerNorm_0/MultiHeadDotProductAttention_1/LayerNorm_2/MlpBlock_3`` (vit_jax) and
  ``LayerNorm_0/MultiHeadDotProductAttention_0/LayerNorm_1/MlpBlock_0`` (big_vision)
  numbering work, as does a scanned ``Transformer/encoderblock/...`` export whose
  arrays carry a leading depth axis.
* ``'timm'``: ``timm.models.vision_transformer.VisionTransformer`` state dicts.
* ``'mae'``: the same timm layout stored under a ``'model'`` entry (the MAE release;
  DeiT releases look the same and convert identically), possibly with the MAE decoder
  (``decoder_*``, ``mask_token``), which is dropped.
* ``'mmpretrain'``: already in the target layout; a ``backbone.`` prefix is removed
  and the keys of other components (head, neck, ...) are dropped.

Nothing is ever downloaded: :func:`load_vit_weights` reads a local file
(:func:`.weights.read_checkpoint`). Use :func:`.weights.check_state_dict` before
``load_state_dict`` so that a pretrained load can never leave a parameter at its random
initial value, and :func:`.weights.adapt_pos_embed` when the checkpoint was trained on
another patch grid than the model's (both are importable from this module too).

All functions are pure: they keep no state and do not modify their inputs (returned
tensors may share memory with input tensors that needed no conversion).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

# read / check / resize live in .weights; importable from here as well
from .weights import (  # noqa: F401
    adapt_pos_embed,
    check_state_dict,
    read_checkpoint,
    resize_pos_embed,
)

__all__ = [
    'FORMATS',
    'ConversionResult',
    'adapt_pos_embed',
    'check_state_dict',
    'convert_vit',
    'convert_vit_report',
    'detect_format',
    'load_vit_weights',
    'read_checkpoint',
    'resize_pos_embed',
]

#: The checkpoint layouts :func:`convert_vit` understands.
FORMATS: tuple[str, ...] = ('npz', 'timm', 'mae', 'mmpretrain')

#: Entries that wrap the actual state dict in saved checkpoints, tried in this order.
_WRAPPERS = ('state_dict', 'model', 'module')

#: Layouts converted by the same code.
_FAMILY = {'npz': 'npz', 'timm': 'timm', 'mae': 'timm', 'mmpretrain': 'mmpretrain'}

#: File extensions :func:`read_checkpoint` reads with ``torch.load``.

_EXAMPLE_KEYS = 8

# ------------------------------------------------------------------------------------
# timm
# ------------------------------------------------------------------------------------
_TIMM_TOP = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'norm_pre.weight': 'pre_norm.weight',
    'norm_pre.bias': 'pre_norm.bias',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
    'reg_token': 'reg_token',  # register tokens (timm)
    'register_tokens': 'reg_token',  # register tokens (the DINOv2 release)
}
_TIMM_BLOCK = {
    'norm1.weight': 'ln1.weight',
    'norm1.bias': 'ln1.bias',
    'attn.qkv.weight': 'attn.qkv.weight',
    'attn.qkv.bias': 'attn.qkv.bias',
    'attn.proj.weight': 'attn.proj.weight',
    'attn.proj.bias': 'attn.proj.bias',
    'ls1.gamma': 'attn.gamma1.weight',
    'norm2.weight': 'ln2.weight',
    'norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
    'ls2.gamma': 'ffn.gamma2.weight',
    # SwiGLU MLP of the DINOv2 release (ViT-g); timm's packed SwiGLU keeps fc1 / fc2,
    # which the host renames when it is built with a SwiGLU FFN
    'mlp.w12.weight': 'ffn.w12.weight',
    'mlp.w12.bias': 'ffn.w12.bias',
    'mlp.w3.weight': 'ffn.w3.weight',
    'mlp.w3.bias': 'ffn.w3.bias',
}
_TIMM_BLOCK_RE = re.compile(r'^blocks\.(\d+)\.(.+)$')
# classification heads and the MAE decoder: not part of the backbone
_TIMM_IGNORED_RE = re.compile(r'^(head|head_dist|pre_logits)(\.|$)|^decoder[._]|^mask_token$')

# ------------------------------------------------------------------------------------
# Google npz (vit_jax / AugReg / big_vision)
# ------------------------------------------------------------------------------------
_NPZ_BLOCK_RE = re.compile(r'^Transformer/encoderblock_(\d+)/(.+)$')
_NPZ_SCANNED_RE = re.compile(r'^Transformer/encoderblock/(.+)$')
_NPZ_POS_KEYS = ('Transformer/posembed_input/pos_embedding', 'pos_embedding')
_NPZ_IGNORED_RE = re.compile(r'^(head|pre_logits|MAPHead_\d+)/')
_NPZ_MODULE_RE = re.compile(r'^(LayerNorm|MultiHeadDotProductAttention|MlpBlock)_(\d+)$')
_NPZ_DENSE_RE = re.compile(r'^Dense_(\d+)$')
_NPZ_LN = {'scale': 'weight', 'bias': 'bias'}

# ------------------------------------------------------------------------------------
# mmpretrain
# ------------------------------------------------------------------------------------
_MMPRETRAIN_RE = re.compile(
    r'^(backbone\.)?(layers\.\d+\.(ln1|ln2|attn|ffn)\.|'
    r'patch_embed\.projection\.)'
)
_MM_BLOCK_RE = re.compile(r'^layers\.(\d+)\.(.+)$')


@dataclass
class ConversionResult:
    """What :func:`convert_vit_report` produced.

    Attributes:
        state_dict (dict[str, Tensor]): The weights under mmpretrain
            ``VisionTransformer`` names.
        fmt (str): The source layout, one of :data:`FORMATS`.
        ignored (list[str]): Source keys deliberately left out (classification
            heads, the MAE decoder, modules other than the backbone).
        notes (list[str]): Other things worth telling the user (unwrapped entries,
            stripped prefixes, re-interpreted norms).
    """

    state_dict: dict[str, Tensor]
    fmt: str
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------
def _examples(keys: list[str]) -> str:
    shown = ', '.join(repr(k) for k in keys[:_EXAMPLE_KEYS])
    more = len(keys) - _EXAMPLE_KEYS
    return shown + (f', ... ({more} more)' if more > 0 else '')


def _to_tensor(value: Any, key: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, np.ndarray) or np.isscalar(value):
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f'{key!r} holds Python objects, not numbers')
        return torch.from_numpy(np.array(array, copy=True, order='C'))
    raise TypeError(f'{key!r} holds a {type(value).__name__}, expected a tensor or an array')


def _strip_common_prefix(flat: dict[str, Any], prefix: str, notes: list[str]) -> dict[str, Any]:
    if flat and all(k.startswith(prefix) for k in flat):
        notes.append(f'removed the prefix {prefix!r} from every key')
        return {k[len(prefix) :]: v for k, v in flat.items()}
    return flat


def _unwrap(obj: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Return the flat state dict inside ``obj``, the wrapper entries taken and notes."""
    if not isinstance(obj, Mapping):
        raise TypeError(f'expected a state dict or an npz mapping, got {type(obj).__name__}')
    taken: list[str] = []
    notes: list[str] = []
    current: Mapping[str, Any] = obj
    for _ in range(len(_WRAPPERS)):
        name = next(
            (n for n in _WRAPPERS if n in current and isinstance(current[n], Mapping)), None
        )
        if name is None:
            break
        inner = current[name]
        taken.append(name)
        others = sorted(str(k) for k in current if k != name)
        notes.append(
            f'took the weights from the {name!r} entry'
            + (f' (other entries not used: {", ".join(others)})' if others else '')
        )
        current = inner
    flat = {str(k): v for k, v in current.items()}
    if not any('/' in k for k in flat):
        for prefix in ('module.', 'model.'):
            flat = _strip_common_prefix(flat, prefix, notes)
    return flat, taken, notes


def _layout_of(flat: dict[str, Any], taken: list[str]) -> str | None:
    keys = list(flat)
    if any(k.startswith('Transformer/') or k == 'embedding/kernel' for k in keys):
        return 'npz'
    if any(_MMPRETRAIN_RE.match(k) for k in keys):
        return 'mmpretrain'
    if any(_TIMM_BLOCK_RE.match(k) for k in keys) or 'patch_embed.proj.weight' in flat:
        mae_like = (
            'model' in taken
            or 'mask_token' in flat
            or any(k.startswith(('decoder.', 'decoder_')) for k in keys)
        )
        return 'mae' if mae_like else 'timm'
    return None


# ------------------------------------------------------------------------------------
# format detection and conversion
# ------------------------------------------------------------------------------------
def detect_format(obj: Mapping[str, Any]) -> str:
    """Tell which layout a checkpoint uses.

    Args:
        obj (Mapping[str, Any]): A loaded checkpoint: a state dict, a dict that wraps
            one under ``'state_dict'``/``'model'``/``'module'``, or the mapping
            returned by ``np.load`` for an npz file.

    Returns:
        str: One of :data:`FORMATS`: ``'npz'`` (Google JAX layout), ``'timm'``,
        ``'mae'`` (timm layout under a ``'model'`` entry or with MAE decoder keys) or
        ``'mmpretrain'``.

    Raises:
        ValueError: The keys match none of these layouts; the message lists examples.
    """
    flat, taken, _ = _unwrap(obj)
    fmt = _layout_of(flat, taken)
    if fmt is None:
        keys = list(flat)
        wrapped = f' (inside {"/".join(repr(t) for t in taken)})' if taken else ''
        raise ValueError(
            f'unrecognised checkpoint layout{wrapped}: expected Google npz '
            "('Transformer/encoderblock_0/...'), timm/MAE ('blocks.0.attn.qkv.weight') or "
            "mmpretrain ('layers.0.attn.qkv.weight') keys; "
            f'found {len(keys)} keys, e.g. {_examples(keys) or "none"}'
        )
    return fmt


def _convert_timm(flat: dict[str, Any], fc_norm_to: str) -> ConversionResult:
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    notes: list[str] = []
    unknown: list[str] = []
    has_norm = 'norm.weight' in flat
    for key, value in flat.items():
        block = _TIMM_BLOCK_RE.match(key)
        if block is not None and block.group(2) in _TIMM_BLOCK:
            out[f'layers.{block.group(1)}.{_TIMM_BLOCK[block.group(2)]}'] = _to_tensor(value, key)
        elif key in _TIMM_TOP:
            out[_TIMM_TOP[key]] = _to_tensor(value, key)
        elif key.startswith('fc_norm.') and not has_norm:
            out[f'{fc_norm_to}.{key[len("fc_norm.") :]}'] = _to_tensor(value, key)
        elif key.startswith('fc_norm.'):
            ignored.append(key)
        elif _TIMM_IGNORED_RE.match(key):
            ignored.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            'these timm keys have no counterpart in mmpretrain VisionTransformer '
            f'(a timm option it does not implement, e.g. qk_norm or register tokens): '
            f'{_examples(unknown)}'
        )
    if any(k.startswith('fc_norm.') for k in flat):
        if has_norm:
            notes.append(
                "'fc_norm' was ignored: the checkpoint also has the final 'norm', "
                "which became 'ln1'"
            )
        elif fc_norm_to == 'ln1':
            notes.append(
                "'fc_norm' became the final norm 'ln1': the source applied it to "
                'the average of the patch tokens, mmpretrain applies ln1 to every '
                "token (use fc_norm_to='ln2' with out_type='avg_featmap' and "
                'final_norm=False to keep the original pooling)'
            )
        else:
            notes.append(
                f"'fc_norm' became {fc_norm_to!r} (mmpretrain's norm after "
                "average pooling, used with out_type='avg_featmap')"
            )
    if any(k.startswith(('decoder', 'mask_token')) for k in ignored):
        notes.append('dropped the MAE decoder (decoder_* and mask_token)')
    _give_class_token_a_position(out, notes)
    return ConversionResult(out, 'timm', ignored, notes)


def _give_class_token_a_position(out: dict[str, Tensor], notes: list[str]) -> None:
    """timm's ``no_embed_class`` layout (DeiT-III, DINOv2 with registers) keeps
    position embeddings for the patches only; mmpretrain's ``pos_embed`` starts with the
    class token's. A zero row in front gives the same sums (the class token gets no
    position, as in the source)."""
    pos = out.get('pos_embed')
    if pos is None or 'cls_token' not in out or pos.dim() != 3:
        return
    side = round(pos.shape[1] ** 0.5)
    if side * side != pos.shape[1]:
        return  # 1 + h*w rows: the class token has its position already
    out['pos_embed'] = torch.cat([pos.new_zeros(1, 1, pos.shape[2]), pos], dim=1)
    notes.append(
        'the position embedding covered the patches only (no_embed_class): a zero '
        'position was put in front for the class token'
    )


def _dense(
    kernel: np.ndarray, bias: np.ndarray | None, out_dims: int | None, key: str
) -> tuple[Tensor, Tensor | None]:
    """JAX ``Dense``/``DenseGeneral`` (in..., out...) kernel -> torch (out, in) weight."""
    if out_dims is None:  # input axis first, output axes after it
        weight = kernel.reshape(kernel.shape[0], -1).T
    else:  # input axes first, the last axis is the output
        weight = kernel.reshape(-1, out_dims).T
    return (_to_tensor(weight, key), None if bias is None else _to_tensor(bias.reshape(-1), key))


def _npz_block(index: int, params: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Convert the arrays of one ``encoderblock`` (keys relative to the block)."""
    where = f'Transformer/encoderblock_{index}'
    modules: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    unknown: list[str] = []
    for sub, array in params.items():
        head, _, rest = sub.partition('/')
        match = _NPZ_MODULE_RE.match(head)
        if match is None or not rest:
            unknown.append(f'{where}/{sub}')
            continue
        modules.setdefault(match.group(1), {}).setdefault(int(match.group(2)), {})[rest] = array
    if unknown:
        raise ValueError(f'unexpected entries in a Google npz block: {_examples(unknown)}')
    norms = [modules.get('LayerNorm', {})[i] for i in sorted(modules.get('LayerNorm', {}))]
    attns = list(modules.get('MultiHeadDotProductAttention', {}).values())
    mlps = list(modules.get('MlpBlock', {}).values())
    if len(norms) != 2 or len(attns) != 1 or len(mlps) != 1:
        raise ValueError(
            f'{where}: expected 2 LayerNorm, 1 MultiHeadDotProductAttention and 1 MlpBlock '
            f'modules, found {len(norms)}, {len(attns)} and {len(mlps)}'
        )

    out: dict[str, Tensor] = {}
    for name, norm in zip(('ln1', 'ln2'), norms):
        for src, dst in _NPZ_LN.items():
            if src in norm:
                out[f'layers.{index}.{name}.{dst}'] = _to_tensor(norm[src], f'{where}/{src}')

    attn = attns[0]
    weights, biases = [], []
    for part in ('query', 'key', 'value'):
        if f'{part}/kernel' not in attn:
            raise ValueError(f'{where}: the attention has no {part}/kernel')
        weight, bias = _dense(
            attn[f'{part}/kernel'], attn.get(f'{part}/bias'), None, f'{where}/{part}'
        )
        weights.append(weight)
        biases.append(bias)
    out[f'layers.{index}.attn.qkv.weight'] = torch.cat(weights, dim=0)
    present = [b is not None for b in biases]
    if all(present):
        out[f'layers.{index}.attn.qkv.bias'] = torch.cat(biases, dim=0)
    elif any(present):
        raise ValueError(f'{where}: only some of query/key/value have a bias')
    if 'out/kernel' not in attn:
        raise ValueError(f'{where}: the attention has no out/kernel')
    embed_dims = attn['out/kernel'].shape[-1]
    weight, bias = _dense(attn['out/kernel'], attn.get('out/bias'), embed_dims, f'{where}/out')
    out[f'layers.{index}.attn.proj.weight'] = weight
    if bias is not None:
        out[f'layers.{index}.attn.proj.bias'] = bias

    dense: dict[int, dict[str, np.ndarray]] = {}
    for sub, array in mlps[0].items():
        head, _, rest = sub.partition('/')
        match = _NPZ_DENSE_RE.match(head)
        if match is None or rest not in ('kernel', 'bias'):
            raise ValueError(f'{where}: unexpected MLP entry {sub!r}')
        dense.setdefault(int(match.group(1)), {})[rest] = array
    if len(dense) != 2:
        raise ValueError(f'{where}: expected 2 Dense layers in the MLP, found {len(dense)}')
    for dst, layer in zip(('ffn.layers.0.0', 'ffn.layers.1'), (dense[i] for i in sorted(dense))):
        weight, bias = _dense(layer['kernel'], layer.get('bias'), None, f'{where}/{dst}')
        out[f'layers.{index}.{dst}.weight'] = weight
        if bias is not None:
            out[f'layers.{index}.{dst}.bias'] = bias
    return out


def _convert_npz(flat: dict[str, Any]) -> ConversionResult:
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    notes: list[str] = []
    unknown: list[str] = []
    blocks: dict[int, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        array = np.asarray(value)
        block = _NPZ_BLOCK_RE.match(key)
        scanned = _NPZ_SCANNED_RE.match(key)
        if block is not None:
            blocks.setdefault(int(block.group(1)), {})[block.group(2)] = array
        elif scanned is not None:  # scanned export: leading axis is the block index
            for i in range(array.shape[0]):
                blocks.setdefault(i, {})[scanned.group(1)] = array[i]
        elif key == 'embedding/kernel':  # HWIO -> OIHW
            out['patch_embed.projection.weight'] = _to_tensor(array.transpose(3, 2, 0, 1), key)
        elif key == 'embedding/bias':
            out['patch_embed.projection.bias'] = _to_tensor(array, key)
        elif key == 'cls':
            out['cls_token'] = _to_tensor(array.reshape(1, 1, -1), key)
        elif key in _NPZ_POS_KEYS:
            out['pos_embed'] = _to_tensor(array.reshape(1, -1, array.shape[-1]), key)
        elif key.startswith('Transformer/encoder_norm/'):
            param = key.rsplit('/', 1)[1]
            if param not in _NPZ_LN:
                unknown.append(key)
            else:
                out[f'ln1.{_NPZ_LN[param]}'] = _to_tensor(array, key)
        elif _NPZ_IGNORED_RE.match(key):
            ignored.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'unexpected entries in a Google npz checkpoint: {_examples(unknown)}')
    if sorted(blocks) != list(range(len(blocks))):
        raise ValueError(f'Google npz encoder blocks are not numbered 0..n-1: {sorted(blocks)}')
    for index in sorted(blocks):
        out.update(_npz_block(index, blocks[index]))
    if any(k.startswith('Transformer/encoderblock/') for k in flat):
        notes.append(f'split the scanned encoder block arrays into {len(blocks)} layers')
    if any(k.startswith('MAPHead_') for k in ignored):
        notes.append(
            'ignored the attention-pooling head (MAPHead); mmpretrain '
            'VisionTransformer has no such pooling'
        )
    return ConversionResult(out, 'npz', ignored, notes)


def _convert_mmpretrain(flat: dict[str, Any]) -> ConversionResult:
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    notes: list[str] = []
    if any(k.startswith('backbone.') for k in flat):
        for key, value in flat.items():
            if key.startswith('backbone.'):
                out[key[len('backbone.') :]] = _to_tensor(value, key)
            else:
                ignored.append(key)
        notes.append(
            "removed the prefix 'backbone.'" + (' and kept only the backbone' if ignored else '')
        )
    else:
        out = {key: _to_tensor(value, key) for key, value in flat.items()}
    return ConversionResult(out, 'mmpretrain', ignored, notes)


def convert_vit_report(
    obj: Mapping[str, Any], fmt: str | None = None, *, fc_norm_to: str = 'ln1'
) -> ConversionResult:
    """Convert a ViT checkpoint to mmpretrain names and say what was done.

    Args:
        obj (Mapping[str, Any]): A loaded checkpoint, see :func:`detect_format`.
        fmt (str, optional): The layout, one of :data:`FORMATS`, or ``None``/``'auto'``
            to detect it. Defaults to None.
        fc_norm_to (str): Where a timm/MAE ``fc_norm`` goes when the checkpoint has no
            final ``norm`` (fine-tuned MAE models): ``'ln1'`` (mmpretrain's final norm,
            applied to every token) or ``'ln2'`` (its norm after average pooling, for
            ``out_type='avg_featmap'`` with ``final_norm=False``). Defaults to 'ln1'.

    Returns:
        ConversionResult: The converted state dict, the layout, the ignored source keys
        and notes.

    Raises:
        ValueError: Unknown layout, unknown ``fmt``, or source keys that have no
            counterpart in mmpretrain's ``VisionTransformer``.
    """
    if fmt in (None, 'auto'):
        fmt = detect_format(obj)
    if fmt not in FORMATS:
        raise ValueError(f'unknown checkpoint format {fmt!r}; choose from {FORMATS} or auto')
    if fc_norm_to not in ('ln1', 'ln2'):
        raise ValueError(f"fc_norm_to must be 'ln1' or 'ln2', got {fc_norm_to!r}")
    flat, taken, notes = _unwrap(obj)
    seen = _layout_of(flat, taken)
    if seen is not None and _FAMILY[seen] != _FAMILY[fmt]:
        raise ValueError(
            f'format {fmt!r} was requested but the keys look like {seen!r}, '
            f'e.g. {_examples(list(flat))}'
        )
    if fmt == 'npz':
        result = _convert_npz(flat)
    elif fmt == 'mmpretrain':
        result = _convert_mmpretrain(flat)
    else:
        result = _convert_timm(flat, fc_norm_to)
    result.fmt = fmt
    result.notes = notes + result.notes
    if not result.state_dict:
        raise ValueError(
            f'no ViT weights found for format {fmt!r}; keys: {_examples(list(flat)) or "none"}'
        )
    return result


def convert_vit(
    obj: Mapping[str, Any], fmt: str | None = None, *, fc_norm_to: str = 'ln1'
) -> dict[str, Tensor]:
    """Convert a ViT checkpoint to mmpretrain ``VisionTransformer`` names.

    Same as :func:`convert_vit_report` but returns only the state dict.

    Args:
        obj (Mapping[str, Any]): A loaded checkpoint (state dict, wrapped state dict
            or npz mapping).
        fmt (str, optional): One of :data:`FORMATS`, or ``None``/``'auto'`` to detect.
            Defaults to None.
        fc_norm_to (str): See :func:`convert_vit_report`. Defaults to 'ln1'.

    Returns:
        dict[str, Tensor]: Tensors keyed by mmpretrain parameter names.
    """
    return convert_vit_report(obj, fmt, fc_norm_to=fc_norm_to).state_dict


# ------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------
def load_vit_weights(
    path: str | os.PathLike[str], fmt: str | None = None, *, fc_norm_to: str = 'ln1'
) -> dict[str, Tensor]:
    """Read a local ViT checkpoint and convert it to mmpretrain names.

    Args:
        path (str | os.PathLike): ``.npz``, ``.pth``/``.pt``/``.bin``/``.ckpt`` or
            ``.safetensors`` file; see :func:`read_checkpoint`.
        fmt (str, optional): One of :data:`FORMATS`, or ``None``/``'auto'`` to detect.
            Defaults to None.
        fc_norm_to (str): See :func:`convert_vit_report`. Defaults to 'ln1'.

    Returns:
        dict[str, Tensor]: Tensors keyed by mmpretrain ``VisionTransformer`` names.

    Raises:
        FileNotFoundError: The file does not exist (nothing is ever downloaded).
    """
    return convert_vit(read_checkpoint(path), fmt, fc_norm_to=fc_norm_to)
