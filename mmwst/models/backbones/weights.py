"""Read local checkpoint files, check weights against a model, resize position embeddings.

The format-independent half of loading pretrained weights (the conversions between
layouts live in :mod:`.convert`):

* :func:`read_checkpoint` reads ``.npz``, ``.pth``/``.pt``/``.bin``/``.ckpt`` and
  ``.safetensors`` files without unpickling anything but tensors, and never downloads.
* :func:`check_state_dict` makes sure loaded weights fit a model exactly (both ways), so that a
  "frozen pretrained" backbone can never keep a random parameter, and explains any
  mismatch (every name, both shapes, a prefix that would fix it).
* :func:`resize_pos_embed` / :func:`adapt_pos_embed` resample a position embedding
  trained on another patch grid.
"""

from __future__ import annotations

import math
import os
import os.path as osp
import pickle
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

TORCH_EXTS = ('.pth', '.pt', '.bin', '.ckpt')


def read_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read a local checkpoint file without converting it.

    ``.npz`` files are read with ``np.load(allow_pickle=False)``; ``.pth``, ``.pt``,
    ``.bin`` and ``.ckpt`` with ``torch.load(weights_only=True)``; ``.safetensors``
    with the ``safetensors`` package. Nothing is unpickled beyond plain tensors and
    containers, and nothing is downloaded.

    Args:
        path (str | os.PathLike): The file.

    Returns:
        Mapping[str, Any]: The loaded object (numpy arrays for npz, tensors otherwise).

    Raises:
        FileNotFoundError: ``path`` is not an existing file.
        ValueError: Unsupported extension, pickled objects that ``weights_only``
            refuses, or a file that does not hold a mapping.
    """
    path = osp.expanduser(os.fspath(path))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'pretrained weights {path!r} not found: pass the path of a local file '
            '(.npz, .pth, .pt, .bin, .ckpt or .safetensors); nothing is downloaded'
        )
    ext = osp.splitext(path)[1].lower()
    if ext == '.npz':
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    if ext == '.safetensors':
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(
                f'reading {path} needs the safetensors package (pip install safetensors)'
            ) from err
        return load_file(path, device='cpu')
    if ext not in TORCH_EXTS:
        raise ValueError(
            f'cannot read {path!r}: unsupported extension {ext!r}; expected '
            f'.npz, .safetensors or one of {", ".join(TORCH_EXTS)}'
        )
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f'{path} holds pickled Python objects besides tensors and was not loaded '
            '(torch.load(weights_only=True) refused it). If you trust its origin, make a '
            'weights-only copy once with `python tools/sanitize_checkpoint.py '
            f'{path} SAFE_COPY.pth --trust-source`. torch said: '
            f'{str(err).splitlines()[0] if str(err) else type(err).__name__}'
        ) from err
    if not isinstance(loaded, Mapping):
        raise ValueError(f'{path} holds a {type(loaded).__name__}, expected a state dict')
    return loaded


def _prefix_advice(missing: list[str], unexpected: list[str]) -> str | None:
    """Spot a prefix that all mismatching names share, e.g. 'backbone.'."""
    counts: Counter[str] = Counter()
    # (names to scan, names to find their tails in, what to do with the prefix)
    for names, others, verb in (
        (missing, set(unexpected), 'add the prefix {!r} to'),
        (unexpected, set(missing), 'remove the prefix {!r} from'),
    ):
        for key in names:
            parts = key.split('.')
            for i in range(1, len(parts)):
                if '.'.join(parts[i:]) in others:
                    counts[verb.format('.'.join(parts[:i]) + '.')] += 1
                    break
    if not counts:
        return None
    advice, count = counts.most_common(1)[0]
    return f'{advice} the checkpoint names ({count} names would then match)'


#: (name pattern, what it means when the file has it and the model lacks it, and when
#: the model has it and the file lacks it) - the host arguments that would fit
_LAYOUT_HINTS: tuple[tuple[str, str, str], ...] = (
    (
        r'\.(attn\.gamma1|ffn\.gamma2)\.weight$',
        'the file has layer scale (DINOv2, DeiT-III): build the host with '
        "layer_scale_init_value=1e-5 (arch='dinov2-*' sets it), or leave it unset to "
        'take it from the file',
        'the file has no layer scale: build the host with layer_scale_init_value=0',
    ),
    (
        r'^reg_token$',
        'the file has register tokens: build the host with num_register_tokens=<their '
        'number> (or leave it unset to take it from the file)',
        'the file has no register tokens: build the host with num_register_tokens=0',
    ),
    (
        r'^pre_norm\.',
        'the file normalises the tokens before the first block (CLIP): build the host '
        'with pre_norm=True',
        'the file has no norm before the first block: build the host with pre_norm=False',
    ),
    (
        r'^patch_embed\.projection\.bias$',
        'the file has a patch-embedding bias: build the host with patch_cfg=dict(bias=True)',
        'the file has no patch-embedding bias (CLIP): build the host with '
        'patch_cfg=dict(bias=False)',
    ),
    (
        r'\.ffn\.w(12|3)\.',
        "the file has SwiGLU MLPs (DINOv2-g): build the host with arch='dinov2-g' or "
        "layer_cfgs=dict(ffn_type='swiglu_fused')",
        "the file has plain MLPs (fc1, fc2): build the host without ffn_type='swiglu_fused'",
    ),
    (
        r'^ln1\.',
        'the file has a final norm: build the host with final_norm=True',
        'the file has no final norm: build the host with final_norm=False',
    ),
    (
        r'^ln2\.',
        "the file has the norm that out_type='avg_featmap' adds (ln2): build the host "
        "with out_type='avg_featmap'",
        "out_type='avg_featmap' adds a norm of its own (ln2) after the mean of the patch "
        'tokens, and the file has none (it was not trained with that output type): build '
        "the host with out_type='avg_patch' (the same mean, through the file's final norm "
        "ln1), 'cls_token' or 'featmap'",
    ),
)


def _layout_advice(missing: list[str], unexpected: list[str]) -> list[str]:
    """Host arguments that would make the file fit (layer scale, registers, ...)."""
    advice = []
    for pattern, file_has, model_has in _LAYOUT_HINTS:
        regex = re.compile(pattern)
        if any(regex.search(k) for k in unexpected):
            advice.append(file_has)
        elif any(regex.search(k) for k in missing):
            advice.append(model_has)
    return advice


def check_state_dict(
    expected: Mapping[str, Tensor], loaded: Mapping[str, Tensor], prefix_hint: str = ''
) -> None:
    """Make sure loaded weights fit a model exactly, in both directions, or explain why not.

    Call it with ``model.state_dict()`` before ``model.load_state_dict(loaded)``: a
    pretrained load must never silently keep randomly initialised parameters, nor leave
    out weights the file holds (a file with layer scale loaded into a host without it
    computes other features).

    Args:
        expected (Mapping[str, Tensor]): The model's state dict (names and shapes).
        loaded (Mapping[str, Tensor]): The converted checkpoint (converters drop what is
            not the backbone: heads, decoders).
        prefix_hint (str): Where these names live in the full model, e.g.
            ``'backbone.'``; prepended to every name in the message so that it
            matches the names in configs and logs. Defaults to ''.

    Raises:
        ValueError: Some expected names are missing, have another shape, or the file
            holds names the model does not use. The message names every one of them,
            with both shapes for the mis-shaped, and the host arguments that would fit
            (layer scale, register tokens, pre-norm, patch bias, SwiGLU, final norm, the
            output type's norm).
    """
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    mis_shaped = [
        (k, tuple(expected[k].shape), tuple(loaded[k].shape))
        for k in expected
        if k in loaded and tuple(expected[k].shape) != tuple(loaded[k].shape)
    ]
    if not missing and not mis_shaped and not unexpected:
        return
    lines = [
        f'pretrained weights do not match the model: {len(missing)} missing, '
        f'{len(mis_shaped)} mis-shaped, {len(unexpected)} unused'
    ]
    if missing:
        lines.append('missing (the model would keep its random initial values):')
        lines += [f'  {prefix_hint}{k}' for k in missing]
    if mis_shaped:
        lines.append('mis-shaped (model shape vs checkpoint shape):')
        lines += [
            f'  {prefix_hint}{k}: model {list(m)} vs checkpoint {list(c)}' for k, m, c in mis_shaped
        ]
    if unexpected:
        lines.append('unused (in the checkpoint but not in the model):')
        lines += [f'  {prefix_hint}{k}' for k in unexpected]
    lines += [f'hint: {advice}' for advice in _layout_advice(missing, unexpected)]
    advice = _prefix_advice(missing, unexpected)
    if advice:
        lines.append(f'hint: {advice}')
    if any(k == 'pos_embed' or k.endswith('.pos_embed') for k, _, _ in mis_shaped):
        lines.append(
            'hint: a pos_embed of another length comes from another patch grid; '
            'adapt it with mmwst.models.backbones.weights.adapt_pos_embed'
        )
    raise ValueError('\n'.join(lines))


def _square_grid(num_patches: int, what: str) -> tuple[int, int]:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(
            f'{what} has {num_patches} patch positions, not a square grid; pass the grid explicitly'
        )
    return side, side


def resize_pos_embed(
    pos_embed: Tensor,
    dst_grid: tuple[int, int],
    src_grid: tuple[int, int] | None = None,
    num_extra_tokens: int = 1,
    mode: str = 'bicubic',
) -> Tensor:
    """Resample a ``(1, extra + H * W, C)`` position embedding to another patch grid.

    The extra tokens (the class token) are kept as they are; the patch part is
    interpolated over the 2-D grid (``align_corners=False``, computed in float32), the
    same resampling mmpretrain's ``VisionTransformer`` applies at run time.

    Args:
        pos_embed (Tensor): Shape ``(1, num_extra_tokens + H * W, C)``.
        dst_grid (tuple[int, int]): The target grid ``(H', W')``.
        src_grid (tuple[int, int], optional): The source grid; inferred as a square
            when None. Defaults to None.
        num_extra_tokens (int): Leading tokens that are not patches. Defaults to 1.
        mode (str): ``torch.nn.functional.interpolate`` mode. Defaults to 'bicubic'.

    Returns:
        Tensor: Shape ``(1, num_extra_tokens + H' * W', C)``; ``pos_embed`` itself
        when the grid is unchanged.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f'pos_embed must have shape (1, L, C), got {list(pos_embed.shape)}')
    num_patches = pos_embed.shape[1] - num_extra_tokens
    if src_grid is None:
        src_grid = _square_grid(num_patches, 'the source pos_embed')
    src_h, src_w = src_grid
    if src_h * src_w != num_patches:
        raise ValueError(
            f'pos_embed has {num_patches} patch positions, which is not the '
            f'source grid {src_h}x{src_w}'
        )
    dst_h, dst_w = dst_grid
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed
    channels = pos_embed.shape[2]
    extra = pos_embed[:, :num_extra_tokens]
    grid = pos_embed[:, num_extra_tokens:].reshape(1, src_h, src_w, channels)
    grid = grid.permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(dst_h, dst_w), mode=mode, align_corners=False)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat([extra, grid], dim=1)


def adapt_pos_embed(
    loaded: Mapping[str, Tensor],
    expected: Mapping[str, Tensor],
    *,
    key: str = 'pos_embed',
    num_extra_tokens: int = 1,
    src_grid: tuple[int, int] | None = None,
    dst_grid: tuple[int, int] | None = None,
    mode: str = 'bicubic',
) -> dict[str, Tensor]:
    """Resize a checkpoint's ``pos_embed`` to the model's patch grid when they differ.

    Args:
        loaded (Mapping[str, Tensor]): The converted checkpoint.
        expected (Mapping[str, Tensor]): The model's state dict.
        key (str): Name of the position embedding. Defaults to 'pos_embed'.
        num_extra_tokens (int): Leading non-patch tokens. Defaults to 1.
        src_grid (tuple[int, int], optional): The checkpoint's grid; a square is
            inferred when None. Defaults to None.
        dst_grid (tuple[int, int], optional): The model's grid; a square is inferred
            when None. Defaults to None.
        mode (str): Interpolation mode. Defaults to 'bicubic'.

    Returns:
        dict[str, Tensor]: A copy of ``loaded`` whose ``key`` entry has the model's
        shape (unchanged entries are the same tensors).
    """
    out = dict(loaded)
    if key not in loaded or key not in expected:
        return out
    source, target = loaded[key], expected[key]
    if tuple(source.shape) == tuple(target.shape):
        return out
    if source.shape[-1] != target.shape[-1]:
        raise ValueError(
            f'{key}: checkpoint width {source.shape[-1]} differs from the '
            f"model's {target.shape[-1]}; resizing cannot fix that"
        )
    if dst_grid is None:
        dst_grid = _square_grid(target.shape[1] - num_extra_tokens, "the model's pos_embed")
    out[key] = resize_pos_embed(source, dst_grid, src_grid, num_extra_tokens, mode)
    return out
