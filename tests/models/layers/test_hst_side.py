"""HST's side network runs each stage once the ViT has run its layers, with everything
that only reads the ViT batched over those layers (one bridge product, one resize, one
group norm for the per-layer key norms, the cross-attentions' key side for all blocks at
once). Checked here against the method written out layer by layer: same outputs, same
gradients for every parameter and every input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmwst.models.layers import HSTSide, SideState
from mmwst.models.layers.wavelet import IDWT2d

DIM, LAYERS, GRID = 16, 12, (4, 6)  # ViT width, layers (3 per stage), patch grid
CHANNELS, HEADS = (8, 12, 16, 8), (1, 2, 4, 2)


def _side(branch: bool, drop_path: float = 0.0, num_meta: int = 1) -> HSTSide:
    torch.manual_seed(0)
    side = HSTSide(
        DIM,
        LAYERS,
        CHANNELS,
        HEADS,
        drop_path_rate=drop_path,
        branch_dims=DIM // 4 if branch else None,
        num_meta=num_meta,
    ).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the init (zero biases, unit norms)
        for p in side.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.2)
    return side


def _inputs(branch: bool, num_meta: int = 1):
    gen = torch.Generator().manual_seed(2)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    (h, w), batch = GRID, 2
    image = rand(batch, 3, 4 * 8, 4 * 12)  # stride-4 stage grid 8 x 12: an upsampled one
    # each layer's output: [M keys; one prefix token; h*w patches]
    tokens = [rand(batch, num_meta + 1 + h * w, DIM) for _ in range(LAYERS)]
    bands = [rand(batch, h, w, DIM) for _ in range(LAYERS)] if branch else [None] * LAYERS
    return image, tokens, bands


def _attention(attn, x, kv):
    """Textbook multi-head cross-attention: full queries, softmax over the keys."""
    batch, tokens, dim = x.shape
    heads = attn.num_heads

    def split(t):  # (B, n, C) -> (B, heads, n, C / heads)
        return t.reshape(batch, t.shape[1], heads, dim // heads).transpose(1, 2)

    q, k, v = split(attn.q(x)), split(attn.k(kv)), split(attn.v(kv))
    weights = (q @ k.transpose(-1, -2) / (dim // heads) ** 0.5).softmax(dim=-1)
    return attn.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))


def _literal(side: HSTSide, image, tokens, bands, num_meta: int = 1):
    """The method layer by layer as the paper states it: resize then bridge, one
    LayerNorm per layer, kv = [g_l; mean(f_l)], the branch resized then bridged."""
    idwt = IDWT2d('haar').double()
    (h, w), net = GRID, side.net
    maps, fmap, layer = [], image, 0
    for stage, depth in enumerate(side.depths):
        x, hw = net.embed(stage, fmap)
        bridge = side.bridges[stage]
        for j in range(depth):
            out = tokens[layer]
            g = side.bridge_norms[layer](bridge(out[:, :num_meta]))
            patch_map = out[:, -h * w :].transpose(1, 2).reshape(out.shape[0], DIM, h, w)
            resized = F.interpolate(patch_map, size=hw, mode='bilinear', align_corners=False)
            fine = bridge(resized.flatten(2).transpose(1, 2))
            kv = torch.cat([g, fine.mean(dim=1, keepdim=True)], dim=1)
            if bands[layer] is not None:  # S_{l+1} = IDWT(T_{l+1}), resized, bridged
                state = idwt(bands[layer], channels_last=True)
                state = F.interpolate(state, size=hw, mode='bilinear', align_corners=False)
                fine = fine + side.branch_bridges[stage](state.flatten(2).transpose(1, 2))
            block = net.blocks[stage][j]
            x = x + block.drop_path(_attention(block.attn, block.norm1(x), kv)) + fine
            x = x + block.drop_path(block.mlp(block.norm2(x)))
            layer += 1
        fmap = net.norms[stage](x).transpose(1, 2).reshape(x.shape[0], -1, *hw)
        maps.append(fmap)
    return maps


def _batched(side: HSTSide, image, tokens, bands, whole: bool, num_meta: int = 1):
    idwt = IDWT2d('haar').double()
    state = SideState(branch_transform=lambda t: idwt(t, channels_last=True))
    for i, out in enumerate(tokens):
        if whole:  # the layer's output as one tensor, as the HST tuner hands it over
            state = side.step_tokens(state, i, image, out, num_meta, GRID, bands[i])
        else:  # keys and patch map apart, as the dense backbone through the ViT
            patches = out[:, -GRID[0] * GRID[1] :].unflatten(1, GRID)
            state = side.step(state, i, image, out[:, :num_meta], patches, bands[i])
    return state.maps


@pytest.mark.parametrize('branch', [False, True], ids=['hst', 'with_branch'])
@pytest.mark.parametrize('whole', [True, False], ids=['tokens', 'keys_and_patches'])
@pytest.mark.parametrize('drop_path', [0.0, 0.3], ids=['eval', 'drop_path'])
def test_stage_batched_side_equals_the_layer_by_layer_method(branch, whole, drop_path):
    side = _side(branch, drop_path)
    side.train(drop_path > 0)
    image, tokens, bands = _inputs(branch)
    torch.manual_seed(3)  # the same stochastic depth draws, block after block
    ours = _batched(side, image, tokens, bands, whole)
    torch.manual_seed(3)
    expected = _literal(side, image, tokens, bands)
    assert [m.shape[1] for m in ours] == list(CHANNELS)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)
    grads = [torch.randn_like(m) for m in ours]
    inputs = [image, *tokens, *(b for b in bands if b is not None), *side.parameters()]
    for a, b in zip(
        torch.autograd.grad(ours, inputs, grads, allow_unused=True),
        torch.autograd.grad(expected, inputs, grads, allow_unused=True),
    ):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('whole', [True, False], ids=['tokens', 'keys_and_patches'])
def test_every_linear_gradient_arrives_in_its_weights_own_layout(whole):
    """A stage copies each block's output projection transposed (``[W_q, W_p^T]``); its
    backward hands the gradient back in ``W_p``'s own layout, so that no gradient of the
    side network's linear maps needs a copy to land in ``.grad`` (the accumulation
    copies one that arrives in another layout: a kernel per weight per step). The
    convolutions read channels-last maps, and their weights' gradients come back in
    that layout; they are not checked here."""
    side = _side(branch=True)
    image, tokens, bands = _inputs(branch=True)
    arrived = {}

    def seen(name):
        def hook(grad):  # the gradient before it is accumulated into .grad
            arrived[name] = grad.stride()

        return hook

    for name, p in side.named_parameters():
        p.register_hook(seen(name))
    maps = _batched(side, image, tokens, bands, whole)
    sum((m * (i + 1)).sum() for i, m in enumerate(maps)).backward()
    params = dict(side.named_parameters())
    linear = [n for n in arrived if params[n].dim() < 4]  # (the meta tokens: unused here)
    assert len([n for n in linear if n.endswith('attn.proj.weight')]) == LAYERS
    assert {n: arrived[n] for n in linear} == {n: params[n].stride() for n in linear}


def test_several_meta_tokens_per_layer():
    side = _side(branch=False, num_meta=2).eval()
    image, tokens, bands = _inputs(branch=False, num_meta=2)
    with torch.no_grad():
        ours = _batched(side, image, tokens, bands, whole=True, num_meta=2)
        expected = _literal(side, image, tokens, bands, num_meta=2)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)


def test_a_step_returns_the_next_state_and_leaves_the_given_one_as_it_was():
    """States flow as values (as WST's branch states do): a forward pass can be resumed
    from any earlier state, and two passes from one state give the same maps."""
    side = _side(branch=True).eval()
    image, tokens, bands = _inputs(branch=True)
    idwt = IDWT2d('haar').double()
    start = SideState(branch_transform=lambda t: idwt(t, channels_last=True))
    states = [start]
    with torch.no_grad():
        for i, out in enumerate(tokens):
            states.append(side.step_tokens(states[-1], i, image, out, 1, GRID, bands[i]))
    per_stage = LAYERS // 4
    for i, state in enumerate(states):  # each state as its step left it
        assert len(state.maps) == i // per_stage
        assert len(state.pending) == i % per_stage
    assert states[0] == start and start.maps == () and start.pending == ()
    # the last stage again from the state before it: the same map
    before = states[-1 - per_stage]
    with torch.no_grad():
        again = before
        for i in range(LAYERS - per_stage, LAYERS):
            again = side.step_tokens(again, i, image, tokens[i], 1, GRID, bands[i])
    torch.testing.assert_close(again.maps[-1], states[-1].maps[-1], rtol=0, atol=0)
    assert len(before.maps) == 3 and before.pending == ()


def _autocast_step(model, x):
    """One bf16-autocast forward and backward: the outputs and every gradient."""
    for p in model.parameters():
        p.grad = None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    weights = [torch.linspace(-1, 1, o.numel()).reshape(o.shape) for o in outs]
    sum((o.float() * w).sum() for o, w in zip(outs, weights)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outs], grads


def _tiny_model(kind: str):
    from mmwst.models.backbones import DenseTunedViT, TunedVisionTransformer

    torch.manual_seed(0)
    arch = dict(embed_dims=32, num_layers=8, num_heads=2, feedforward_channels=64)
    widths = dict(channels=(8, 16, 16, 32), num_heads=(1, 2, 2, 4))
    if kind == 'hst':
        hst = dict(type='mmwst.HST', **widths)
        model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=[hst])
    else:
        model = DenseTunedViT(
            arch=arch, img_size=32, patch_size=8, hst=widths, host_grad=kind == 'through'
        )
    model.init_weights()
    with torch.no_grad():  # away from the init (zero biases)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model.train()


@pytest.mark.parametrize('kind', ['hst', 'through', 'beside'])
def test_under_autocast_a_stage_casts_its_weights_in_one_copy(kind, monkeypatch):
    """Under bf16 autocast each stage casts its blocks' attention and MLP weights, its
    embedding's convolution weights and its bridges in one copy (the stage's weight copy, cast
    once) instead of autocast's cast per weight and product: the same outputs and
    gradients bit for bit, four casts per side block fewer forward and as many backward,
    and two per embedding or bridge weight; and the step still compiles into one graph."""
    import torch._dynamo

    from mmwst.models.layers import hst_side
    from tools.benchmarking.ops import count_ops

    model = _tiny_model(kind)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    batched, batched_grads = _autocast_step(model, x)
    casts = count_ops(lambda: _autocast_step(model, x))[1]['_to_copy']
    with monkeypatch.context() as patch:  # autocast's own casts, operator by operator
        patch.setattr(hst_side, 'autocast_dtype', lambda device_type: None)
        plain, plain_grads = _autocast_step(model, x)
        plain_casts = count_ops(lambda: _autocast_step(model, x))[1]['_to_copy']
    assert all(torch.equal(a, b) for a, b in zip(batched, plain))
    assert batched_grads.keys() == plain_grads.keys()
    assert all(torch.equal(batched_grads[n], plain_grads[n]) for n in plain_grads)
    blocks = 8  # side blocks, one per ViT layer
    assert plain_casts - casts >= 2 * 4 * blocks, (plain_casts, casts)
    with monkeypatch.context() as patch:  # the embeddings and bridges cast one by one
        patch.setattr(hst_side.HSTSide, '_product_weights', lambda self, stage, low: [])
        alone, alone_grads = _autocast_step(model, x)
        alone_casts = count_ops(lambda: _autocast_step(model, x))[1]['_to_copy']
    assert all(torch.equal(a, b) for a, b in zip(batched, alone))
    assert all(torch.equal(batched_grads[n], alone_grads[n]) for n in alone_grads)
    # the weights of the stem's two convolutions and of three patch embeddings, four
    # bridges (weight and bias), and with WST's branch four branch bridges (2 each): a
    # cast forward and one back for each
    joined = 2 + 3 + 2 * 4 + (0 if kind == 'hst' else 2 * 4)
    assert alone_casts - casts == 2 * joined, (alone_casts, casts)
    torch._dynamo.reset()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
