"""A position embedding trained on another patch grid is resized on load: the result must
equal an independent bicubic resampling of the file's grid (timm's
``resample_abs_pos_embed``, and ``F.interpolate`` written out here), for square and
non-square targets, with and without a class token, and with register tokens (which have
no position: they are stored apart from ``pos_embed`` and must come through untouched).

Checked at the function level (``resize_pos_embed`` / ``adapt_pos_embed``) and end to end:
a host built from a saved file holds the resized embedding, and with the same file timm's
own model at the target size computes the same features.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmwst.models.backbones import TunedVisionTransformer
from mmwst.models.backbones.weights import adapt_pos_embed, resize_pos_embed

timm = pytest.importorskip('timm')
from timm.layers import resample_abs_pos_embed  # noqa: E402
from timm.models.vision_transformer import VisionTransformer as TimmViT  # noqa: E402

WIDTH, PATCH = 16, 4
SRC = (4, 4)  # the file's patch grid (16 x 16 pixels)
#: a larger square grid, and non-square grids both ways round (a height / width swap
#: gives the other one's shape)
TARGETS = [(6, 6), (3, 5), (5, 3)]
TARGET_IDS = ['6x6', '3x5', '5x3']
ARCH = dict(embed_dims=WIDTH, num_layers=1, num_heads=2, feedforward_channels=4 * WIDTH)
#: float32 against float32 with the same operation: equal up to rounding
ATOL = 1e-6


def _field(prefix: int, grid: tuple[int, int] = SRC, seed: int = 0) -> torch.Tensor:
    """A random position embedding ``(1, prefix + h * w, WIDTH)``: every row differs."""
    rows = prefix + grid[0] * grid[1]
    return torch.randn(1, rows, WIDTH, generator=torch.Generator().manual_seed(seed))


def _by_hand(pos: torch.Tensor, prefix: int, src: tuple, dst: tuple) -> torch.Tensor:
    """The expected resize, written out: the leading ``prefix`` rows kept as they are, the
    grid rows laid out row-major as an ``(h, w)`` image of ``WIDTH`` channels, resampled
    bicubically (half-pixel centres, no antialiasing) to ``dst`` and flattened back."""
    kept, grid = pos[:, :prefix], pos[:, prefix:]
    image = grid.reshape(1, src[0], src[1], WIDTH).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=dst, mode='bicubic', align_corners=False)
    return torch.cat([kept, image.permute(0, 2, 3, 1).reshape(1, dst[0] * dst[1], WIDTH)], dim=1)


def _timm(pos: torch.Tensor, prefix: int, src: tuple, dst: tuple) -> torch.Tensor:
    """timm's resampling of the same embedding (antialiasing off: it only acts when a
    side shrinks, and neither the host nor mmpretrain applies it)."""
    return resample_abs_pos_embed(
        pos, new_size=list(dst), old_size=list(src), num_prefix_tokens=prefix, antialias=False
    )


# --- the functions ---------------------------------------------------------------------
@pytest.mark.parametrize('dst', TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize('prefix', [1, 0], ids=['cls', 'no_cls'])
def test_resize_equals_independent_bicubic_resampling(prefix, dst):
    pos = _field(prefix)
    expected = _by_hand(pos, prefix, SRC, dst)
    # the two references agree with each other (so that neither is the odd one out)
    torch.testing.assert_close(_timm(pos, prefix, SRC, dst), expected, rtol=0, atol=ATOL)

    got = resize_pos_embed(pos, dst, num_extra_tokens=prefix)  # square source inferred
    assert got.shape == (1, prefix + dst[0] * dst[1], WIDTH)
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
    assert torch.equal(got[:, :prefix], pos[:, :prefix])  # the class row, unchanged
    torch.testing.assert_close(
        resize_pos_embed(pos, dst, src_grid=SRC, num_extra_tokens=prefix), expected
    )

    model_state = {'pos_embed': torch.zeros(1, prefix + dst[0] * dst[1], WIDTH)}
    adapted = adapt_pos_embed(
        {'pos_embed': pos}, model_state, num_extra_tokens=prefix, dst_grid=dst
    )['pos_embed']
    torch.testing.assert_close(adapted, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize('dst', [(3, 5), (5, 3)], ids=['3x5', '5x3'])
def test_resize_keeps_height_and_width_apart(dst):
    """A property that needs no reference resampling: a field that changes only down
    the grid (the same along every grid row) must stay constant along every row of the
    resized grid and keep changing down it; with height and width swapped it would not."""
    h, w = SRC
    ramp = torch.arange(h, dtype=torch.float32).pow(2)  # per grid row
    grid = ramp.view(h, 1, 1).expand(h, w, WIDTH).reshape(1, h * w, WIDTH)
    pos = torch.cat([torch.full((1, 1, WIDTH), 7.0), grid], dim=1)
    resized = resize_pos_embed(pos, dst)[:, 1:].reshape(dst[0], dst[1], WIDTH)
    along_rows = resized - resized[:, :1]
    assert along_rows.abs().max() < 1e-5, 'values vary along a row: height and width mixed'
    assert (resized[1:, 0] - resized[:-1, 0]).abs().min() > 1e-3  # changes down the grid
    torch.testing.assert_close(
        resized[:, 0, 0], _by_hand(pos, 1, SRC, dst)[0, 1:].view(dst[0], dst[1], WIDTH)[:, 0, 0]
    )


# --- end to end: a host built from a saved file ----------------------------------------
def _mm_file(tmp_path, with_cls: bool) -> tuple[str, dict]:
    """A file in the host's own (mmpretrain) layout, trained on the 4 x 4 grid."""
    options = {} if with_cls else dict(with_cls_token=False, out_type='raw')
    torch.manual_seed(0)
    source = TunedVisionTransformer(arch=ARCH, img_size=16, patch_size=PATCH, **options)
    with torch.no_grad():
        source.pos_embed.copy_(_field(1 if with_cls else 0, seed=1))
    with source.full_state_dict():
        state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / f'mm_{"cls" if with_cls else "nocls"}.pth'
    torch.save({'state_dict': state}, path)
    return str(path), state


@pytest.mark.parametrize('dst', TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize('with_cls', [True, False], ids=['cls', 'no_cls'])
def test_host_loads_the_resized_pos_embed_of_its_file(tmp_path, with_cls, dst):
    path, state = _mm_file(tmp_path, with_cls)
    prefix = 1 if with_cls else 0
    options = {} if with_cls else dict(with_cls_token=False, out_type='raw')
    size = (dst[0] * PATCH, dst[1] * PATCH)
    tuners = [dict(type='mmwst.LoRA', rank=2)]
    host = TunedVisionTransformer(
        arch=ARCH, img_size=size, patch_size=PATCH, pretrained=path, tuners=tuners, **options
    )
    assert tuple(host.patch_resolution) == dst
    host.init_weights()
    expected = _by_hand(state['pos_embed'], prefix, SRC, dst)
    torch.testing.assert_close(host.pos_embed.detach(), expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        host.pos_embed.detach(), _timm(state['pos_embed'], prefix, SRC, dst), rtol=0, atol=ATOL
    )
    # nothing else was resized
    with host.full_state_dict():
        loaded = {k: v for k, v in host.state_dict().items() if not k.startswith('tuners.')}
    assert set(loaded) == set(state)
    for name, value in loaded.items():
        if name != 'pos_embed':
            assert torch.equal(value, state[name]), name

    # an adapter-only checkpoint refills the frozen host from the file: resized alike
    fresh = TunedVisionTransformer(
        arch=ARCH, img_size=size, patch_size=PATCH, pretrained=path, tuners=tuners, **options
    )
    fresh.load_state_dict(host.state_dict())  # the tuners only
    torch.testing.assert_close(fresh.pos_embed.detach(), expected, rtol=0, atol=ATOL)


#: timm layouts: the class token's position stored in ``pos_embed`` (no registers), and
#: DINOv2 with registers: positions for the patches only (``no_embed_class``; the class
#: token and the registers get none), the registers in ``reg_token``, layer scale
TIMM_LAYOUTS = {
    'cls_row': dict(reg_tokens=0, no_embed_class=False, init_values=None),
    'registers': dict(reg_tokens=2, no_embed_class=True, init_values=0.5),
}


def _timm_model(layout: str, grid: tuple[int, int]) -> TimmViT:
    return TimmViT(
        img_size=(grid[0] * PATCH, grid[1] * PATCH),
        patch_size=PATCH,
        embed_dim=WIDTH,
        depth=1,
        num_heads=2,
        mlp_ratio=4.0,
        num_classes=0,
        **TIMM_LAYOUTS[layout],
    ).eval()


@pytest.mark.parametrize('dst', TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize('layout', list(TIMM_LAYOUTS))
def test_host_from_a_timm_file_equals_timm_at_the_target_grid(tmp_path, layout, dst):
    source = _timm_model(layout, SRC)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in source.parameters():  # every weight away from its init
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / f'timm_{layout}.pth'
    torch.save(state, path)
    registers = TIMM_LAYOUTS[layout]['reg_tokens']
    file_prefix = 0 if TIMM_LAYOUTS[layout]['no_embed_class'] else 1

    size = (dst[0] * PATCH, dst[1] * PATCH)
    host = TunedVisionTransformer(
        arch=ARCH, img_size=size, patch_size=PATCH, pretrained=str(path), out_type='raw'
    )
    host.init_weights()
    host.eval()
    assert host.num_register_tokens == registers
    resized = _by_hand(state['pos_embed'], file_prefix, SRC, dst)
    if not file_prefix:  # the class token has no position: a zero row in front
        resized = torch.cat([torch.zeros(1, 1, WIDTH), resized], dim=1)
    torch.testing.assert_close(host.pos_embed.detach(), resized, rtol=0, atol=ATOL)
    if registers:
        assert torch.equal(host.reg_token.detach(), state['reg_token'])  # never resized

    # timm's own model at the target grid, given timm's resampling of the same weights
    target = _timm_model(layout, dst)
    moved = dict(state, pos_embed=_timm(state['pos_embed'], file_prefix, SRC, dst))
    target.load_state_dict(moved)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = target.forward_features(x)  # class, registers, patches; final norm
        got = host(x)[0]
    assert got.shape == expected.shape == (2, 1 + registers + dst[0] * dst[1], WIDTH)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
