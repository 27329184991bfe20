"""frozen_dtype='bf16': the frozen host held in bfloat16 (half its memory), what trains in
float32, outputs in float32 and close to the float32 model's."""

from __future__ import annotations

import pytest
import torch

from mmwst.models.backbones import DenseTunedViT, TunedSwinTransformer, TunedVisionTransformer

ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)


def _pair(cls, tuners, **kwargs):
    """The same weights twice: float32 and with the frozen part in bf16."""
    torch.manual_seed(0)
    full = cls(tuners=tuners, **kwargs)
    full.init_weights()
    with torch.no_grad():
        for p in full.tuners.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from an identity init
    half = cls(tuners=tuners, frozen_dtype='bf16', **kwargs)
    with full.full_state_dict():
        state = full.state_dict()
    with half.full_state_dict():
        half.load_state_dict(state)
    return full.eval(), half.eval()


def _bytes(model, trainable: bool) -> int:
    return sum(
        p.numel() * p.element_size() for p in model.parameters() if p.requires_grad is trainable
    )


def _one_step(model, x, bf16_autocast: bool):
    """One forward and backward of ``model`` on ``x`` (under bf16 autocast if asked) with
    a fixed projection of the output as the loss, the random draws seeded (dropout,
    stochastic depth): the output and every parameter's gradient."""
    import contextlib

    model.zero_grad(set_to_none=True)
    torch.manual_seed(2)
    autocast = torch.autocast('cpu', dtype=torch.bfloat16) if bf16_autocast else None
    with autocast or contextlib.nullcontext():
        out = model(x)[0]
    (out.float() * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads


def _one_copy_against_alone(model, x, bf16_autocast: bool, undo, monkeypatch, trained=None):
    """``model``'s training step as it is, and with ``undo(patch)`` (a monkeypatch that
    puts back the casts one by one) in force: the same outputs and gradients bit for
    bit, every tuner parameter with one (or ``trained`` parameters: a method that trains
    the host's own); the step compiles whole. Returns the operators counted in one step
    of each, ``(as it is, undone)``."""
    import torch._dynamo

    from tools.benchmarking.ops import count_ops

    def step():
        return _one_step(model, x, bf16_autocast)

    out, grads = step()
    ops = count_ops(step)[1]
    with monkeypatch.context() as patch:
        undo(patch)
        alone, alone_grads = step()
        alone_ops = count_ops(step)[1]
    assert torch.equal(out, alone) and grads.keys() == alone_grads.keys()
    assert all(torch.equal(grads[n], alone_grads[n]) for n in grads), [
        n for n in grads if not torch.equal(grads[n], alone_grads[n])
    ]
    if trained is None:
        trained = len(list(model.tuners[0].parameters()))
    assert len(grads) == trained
    torch._dynamo.reset()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16_autocast):
        assert torch._dynamo.explain(model)(x).graph_break_count == 0
    return ops, alone_ops


HOSTS = {
    'vit': (TunedVisionTransformer, dict(arch=ARCH, img_size=32, patch_size=8), (2, 3, 32, 32)),
    'swin': (
        TunedSwinTransformer,
        dict(
            arch=dict(embed_dims=32, depths=[2, 2], num_heads=[2, 4]),
            img_size=64,
            window_size=4,
            out_indices=(1,),
        ),
        (2, 3, 64, 64),
    ),  # yapf: disable
}


@pytest.mark.parametrize('kind', list(HOSTS))
def test_frozen_weights_in_bf16_trainables_and_outputs_in_float32(kind):
    cls, kwargs, shape = HOSTS[kind]
    full, half = _pair(cls, [dict(type='mmwst.LoRA', rank=4)], **kwargs)
    frozen = {p.dtype for p in half.parameters() if not p.requires_grad}
    trained = {p.dtype for p in half.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trained == {torch.float32}
    assert _bytes(half, False) * 2 == _bytes(full, False)  # half the frozen memory
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = full(x)[0], half(x)[0]
    assert got.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: the features agree to about 1% (stated in
    # docs/hosts.md), far closer than two different weight sets would
    relative = ((got - expected).norm() / expected.norm()).item()
    assert relative < 2e-2, relative


@pytest.mark.parametrize('kind', list(HOSTS))
def test_bitfit_trains_norm_biases_beside_their_frozen_weights(kind):
    """BitFit trains every bias, the LayerNorms' too: their frozen weights stay float32
    beside them (one norm operator reads both), the Linears' weights go to bf16, and a
    training step runs with outputs close to the float32 model's."""
    cls, kwargs, shape = HOSTS[kind]
    full, half = _pair(cls, [dict(type='mmwst.BitFit')], **kwargs)
    norms = [m for m in half.host_modules() if isinstance(m, torch.nn.LayerNorm)]
    linears = [m for m in half.host_modules() if isinstance(m, torch.nn.Linear)]
    assert norms and linears
    assert all(n.weight.dtype == torch.float32 and not n.weight.requires_grad for n in norms)
    assert all(n.bias.requires_grad for n in norms)
    assert {m.weight.dtype for m in linears} == {torch.bfloat16}
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = full(x)[0], half(x)[0]
    assert ((got - expected).norm() / expected.norm()).item() < 2e-2
    half.train()
    half(x)[0].sum().backward()
    assert all(n.bias.grad is not None and n.bias.grad.dtype == torch.float32 for n in norms)


def test_training_step_updates_the_tuners_and_never_the_frozen_weights():
    cls, kwargs, shape = HOSTS['vit']
    _, model = _pair(cls, [dict(type='mmwst.LoRA', rank=4)], **kwargs)
    model.train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trained]
    optimizer = torch.optim.AdamW(trained, lr=1e-2)
    out = model(torch.randn(*shape))[0]
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trained)
    optimizer.step()
    assert any(not torch.equal(p, b) for p, b in zip(trained, before))
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.dtype == torch.bfloat16 and torch.equal(p, frozen[name]), name


def test_dense_backbone_keeps_its_trained_vit_norms_in_float32():
    side = dict(channels=(8, 16, 16, 32), num_heads=(1, 2, 2, 4))
    model = DenseTunedViT(arch=ARCH, img_size=64, patch_size=8, hst=side, frozen_dtype='bf16')
    norms = [p for spec in model.blocks for p in spec.norm1.parameters()]
    assert all(p.requires_grad and p.dtype == torch.float32 for p in norms)
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}
    maps = model(torch.randn(1, 3, 64, 64))
    assert [m.dtype for m in maps] == [torch.float32] * 4
    sum(m.mean() for m in maps).backward()
    assert all(p.grad is not None for p in norms)


def test_adapter_only_checkpoint_round_trip_in_bf16(tmp_path):
    cls, kwargs, shape = HOSTS['vit']
    full, _ = _pair(cls, [dict(type='mmwst.LoRA', rank=4)], **kwargs)
    with full.full_state_dict():
        host = {k: v for k, v in full.state_dict().items() if not k.startswith('tuners.')}
    torch.save(host, tmp_path / 'base.pth')
    model = cls(tuners=[dict(type='mmwst.LoRA', rank=4)], pretrained=str(tmp_path / 'base.pth'),
                frozen_dtype='bf16', **kwargs)  # yapf: disable
    model.init_weights()
    model.load_state_dict(full.state_dict())  # the tuners only
    x = torch.randn(*shape)
    with torch.no_grad():
        assert ((model.eval()(x)[0] - full(x)[0]).norm() / full(x)[0].norm()) < 2e-2
    assert not set(model.state_dict()) & set(model.frozen_host_keys())


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="frozen_dtype must be None .* 'bf16' or 'fp16'"):
        TunedVisionTransformer(arch=ARCH, img_size=32, patch_size=8, frozen_dtype='int8')


def test_host_memory_tool_measures_half_the_frozen_weights():
    """tools/host_memory.py (the README's DINOv2-L / -g figures) on DINOv2-S at 56 x 56:
    bf16 halves the frozen weights; the peak is weights plus the step's peak."""
    from tools.host_memory import worker

    fp32 = worker('dinov2-s', 'lora', 'fp32', 56)
    bf16 = worker('dinov2-s', 'lora', 'bf16', 56)
    assert fp32['frozen_params'] == bf16['frozen_params'] > 20_000_000
    frozen_mb = fp32['frozen_params'] * 4 / 2**20
    assert bf16['weights_mb'] == pytest.approx(fp32['weights_mb'] - frozen_mb / 2, abs=0.2)
    for row in (fp32, bf16):
        assert row['peak_mb'] == pytest.approx(row['weights_mb'] + row['step_peak_mb'], abs=0.2)
        assert row['step_peak_mb'] > 0


@pytest.mark.parametrize('held_mib', [8, 24])
def test_host_memory_tool_reports_an_allocation_of_known_size(monkeypatch, held_mib):
    """The tool's figures on a stand-in model whose training step holds one tensor of a
    known size (``held_mib``) at its peak; everything else the step allocates (a 4 KiB
    gradient, the loss, AdamW's moments of 1026 weights) stays under 0.05 MiB. The
    reported step peak is that size within 0.1 MiB (its rounding included), for two
    sizes, and the peak adds the weights to it."""
    from torch import nn

    import tools.host_memory as tool

    def build(arch, method, dtype, size):
        backbone, head = nn.Linear(1024, 1, bias=False), nn.Linear(1, 1)

        def loss_of(x):
            held = torch.ones(held_mib * 2**20 // 4)  # held_mib MiB of float32
            weight = backbone.weight
            # the product keeps (a view of) the held tensor for the backward pass
            return head((weight * held[: weight.numel()].view_as(weight)).sum(1)).sum()

        params = [*backbone.parameters(), *head.parameters()]
        return backbone, head, loss_of, torch.optim.AdamW(params, lr=1e-3)

    monkeypatch.setattr(tool, 'build', build)
    row = tool.worker('stand-in', 'lora', 'fp32', 8)
    assert row['trainable_params'] == 1024 + 2 and row['frozen_params'] == 0
    assert row['step_peak_mb'] == pytest.approx(held_mib, abs=0.1)
    assert row['peak_mb'] == pytest.approx(row['weights_mb'] + held_mib, abs=0.1)


def test_hst_casts_its_meta_tokens_to_a_bf16_host_in_one_copy(monkeypatch):
    """With the frozen ViT in bf16 the tokens run in bf16: HST casts the meta tokens of
    all layers in one copy (one cast forward, one backward) instead of one per layer,
    with the same outputs and gradients bit for bit; the step compiles whole."""
    import torch._dynamo

    from mmwst.models.layers import HSTSide
    from tools.benchmarking.ops import count_ops

    hst = dict(type='mmwst.HST', channels=(8, 12, 16, 32), num_heads=(1, 2, 2, 4))
    model = TunedVisionTransformer(
        arch=ARCH, img_size=32, patch_size=8, tuners=[hst], frozen_dtype='bf16'
    ).train()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def step():
        model.zero_grad(set_to_none=True)
        model(x)[0].sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    once = step()
    casts = count_ops(step)[1]['_to_copy']
    with monkeypatch.context() as patch:  # a cast per layer, as each layer reads its own
        patch.setattr(HSTSide, 'cast_meta', lambda self, state, dtype: state)
        per_layer = step()
        per_layer_casts = count_ops(step)[1]['_to_copy']
    assert once.keys() == per_layer.keys() and any('meta_tokens' in n for n in once)
    assert all(torch.equal(once[n], per_layer[n]) for n in once)
    layers = ARCH['num_layers']
    assert per_layer_casts - casts == 2 * (layers - 1), (per_layer_casts, casts)
    torch._dynamo.reset()
    assert torch._dynamo.explain(model)(x).graph_break_count == 0


@pytest.mark.parametrize('kind', list(HOSTS))
def test_rlrr_casts_its_scales_and_shifts_to_a_bf16_host_in_one_copy(kind, monkeypatch):
    """With the frozen weights in bf16, RLRR casts the scales ``s_out``, ``s_in`` and the
    shifts ``f`` of all its layers in one copy each (the scales for the forward only,
    the shifts' gradients back through one cast), and adds the shifts to the frozen
    biases in one multi-tensor addition, where each layer would cast its own three and
    add its own: the same outputs and gradients bit for bit, four casts per layer fewer
    (three forward, one back) against the copies' three; the step compiles whole. On
    Swin (the released layout) the patch-merging reductions have no bias: their shift
    is the bias."""
    from mmwst.models.tuners import RLRR

    cls, kwargs, shape = HOSTS[kind]
    _, model = _pair(cls, [dict(type='mmwst.RLRR')], **kwargs)
    model.train()
    rlrr = model.tuners[0]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    # each layer casts and shifts its own; Swin's stochastic depth draws the same in
    # every step
    ops, alone_ops = _one_copy_against_alone(
        model,
        x,
        False,
        lambda patch: patch.setattr(RLRR, 'before_blocks', lambda self, x, ctx: x),
        monkeypatch,
    )
    layers = len(rlrr._linears)
    casts, alone_casts = ops['_to_copy'], alone_ops['_to_copy']
    assert alone_casts - casts == 4 * layers - 3, (alone_casts, casts, layers)
    # the biased layers' b + f: one multi-tensor addition instead of one addition each
    biased = sum(linear.bias is not None for linear in rlrr._linears.values())
    assert ops['_foreach_add'] == 1 and alone_ops['_foreach_add'] == 0
    assert alone_ops['add'] - ops['add'] == biased, (alone_ops['add'], ops['add'], biased)


@pytest.mark.parametrize('where', ['bf16_host', 'autocast'])
@pytest.mark.parametrize('method', ['lora', 'patt'])
def test_lora_and_patt_cast_their_weights_in_one_copy(method, where, monkeypatch):
    """Where LoRA's or PATT's products run in bf16 - a frozen host held in bf16, or a
    float32 host under bf16 autocast - every target's ``A`` and ``B`` (PATT: every
    block's down and up weights and biases) are cast in one copy before the blocks (one
    cast forward, one back), where each cast its own each way: the same outputs and
    gradients bit for bit; the step compiles whole."""
    from mmwst.models.tuners import PATT, LoRA

    tuner_cls, tuner = {
        'lora': (LoRA, dict(type='mmwst.LoRA', rank=4)),
        'patt': (PATT, dict(type='mmwst.PATT', rank=4)),
    }[method]
    cls, kwargs, shape = HOSTS['vit']
    full, half = _pair(cls, [tuner], **kwargs)
    model = (half if where == 'bf16_host' else full).train()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    ops, alone_ops = _one_copy_against_alone(  # each target casts its own
        model,
        x,
        where == 'autocast',
        lambda patch: patch.setattr(tuner_cls, 'before_blocks', lambda self, x, ctx: x),
        monkeypatch,
    )
    # LoRA: A and B of q and v in 4 blocks; PATT: 4 tensors in each of 4 blocks
    tensors = 2 * 2 * ARCH['num_layers'] if method == 'lora' else 4 * ARCH['num_layers']
    casts, alone_casts = ops['_to_copy'], alone_ops['_to_copy']
    assert alone_casts - casts == 2 * tensors - 2, (alone_casts, casts, tensors)


ONE_COPY_ADAPTERS = {
    # tuner, product tensors per adapter (weights and biases), adapters
    # Mona: down and up with their biases, the weights of its four convolutions
    'mona': (dict(type='mmwst.Mona', bottleneck=8), 8, 2 * ARCH['num_layers']),
    'adapter': (dict(type='mmwst.Adapter', bottleneck=8), 4, 2 * ARCH['num_layers']),
    'adaptformer': (dict(type='mmwst.AdaptFormer', bottleneck=8), 4, ARCH['num_layers']),
    # the tokens and both Linears of each block's encoder
    'prefix': (dict(type='mmwst.PrefixTuning', num_tokens=4, hidden=16), 5, ARCH['num_layers']),
}


@pytest.mark.parametrize('host', ['float32', 'bf16'])
@pytest.mark.parametrize('method', list(ONE_COPY_ADAPTERS))
def test_adapters_cast_their_product_weights_in_one_copy_under_autocast(method, host, monkeypatch):
    """Under bf16 autocast (a float32 host, or one held in bf16), Mona (down, up, the
    weights of the three depthwise convolutions and the 1x1), Adapter and AdaptFormer
    (down, up) and prefix tuning (the tokens, down, up) cast the weights and biases of
    all their adapters' products in one copy before the blocks (one cast forward, one
    back), where autocast cast each at its product and its gradient back: the same
    outputs and gradients bit for bit; the step compiles whole."""
    from mmwst.models.tuners import base

    tuner, per_adapter, adapters = ONE_COPY_ADAPTERS[method]
    cls, kwargs, shape = HOSTS['vit']
    full, half = _pair(cls, [tuner], **kwargs)
    model = (full if host == 'float32' else half).train()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    # autocast casts each weight at its product; Mona's dropout draws the same masks in
    # every step
    ops, alone_ops = _one_copy_against_alone(
        model,
        x,
        True,
        lambda patch: patch.setattr(base, 'product_weights_in_one_copy', lambda *args: {}),
        monkeypatch,
    )
    casts, alone_casts = ops['_to_copy'], alone_ops['_to_copy']
    assert alone_casts - casts == 2 * per_adapter * adapters - 2, (alone_casts, casts)


@pytest.mark.parametrize('host', ['float32', 'bf16'])
def test_dora_casts_its_factors_in_one_copy_under_autocast(host, monkeypatch):
    """Under bf16 autocast DoRA casts every target's ``A`` and ``B`` - and its magnitude
    ``g`` where the frozen weights are bf16 too - in one copy before the blocks, where
    each weight function's product and casts cast them each way: the same outputs and
    gradients bit for bit; the step compiles whole."""
    from mmwst.models.tuners import DoRA

    cls, kwargs, shape = HOSTS['vit']
    full, half = _pair(cls, [dict(type='mmwst.DoRA', rank=4)], **kwargs)
    model = (full if host == 'float32' else half).train()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    ops, alone_ops = _one_copy_against_alone(  # each weight function casts its own
        model,
        x,
        True,
        lambda patch: patch.setattr(DoRA, 'before_blocks', lambda self, x, ctx: x),
        monkeypatch,
    )
    targets = 2 * ARCH['num_layers']  # q and v
    per_target = 2 if host == 'float32' else 3  # A, B (and g)
    casts, alone_casts = ops['_to_copy'], alone_ops['_to_copy']
    assert alone_casts - casts == 2 * per_target * targets - 2, (alone_casts, casts)


@pytest.mark.parametrize('where', ['bf16_host', 'autocast'])
@pytest.mark.parametrize('kind', list(HOSTS))
def test_bitfit_casts_the_linears_biases_in_one_copy(kind, where, monkeypatch):
    """Where BitFit's Linears run in bf16 - a frozen host held in bf16, or a float32 host
    under bf16 autocast - their trained float32 biases are cast in one copy before the
    blocks (one cast forward, one back), where autocast cast each at its product and its
    gradient back: the same outputs and bias gradients bit for bit; the step compiles
    whole; merged, the inference forward casts them at once too."""
    from mmwst.models.tuners import BitFit
    from tools.benchmarking.ops import count_ops

    cls, kwargs, shape = HOSTS[kind]
    full, half = _pair(cls, [dict(type='mmwst.BitFit')], **kwargs)
    model = (half if where == 'bf16_host' else full).train()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    linears = [
        m for m in model.host_modules() if isinstance(m, torch.nn.Linear) and m.bias is not None
    ]
    ops, alone_ops = _one_copy_against_alone(  # autocast casts each bias where it is read
        model,
        x,
        where == 'autocast',
        lambda patch: patch.setattr(BitFit, 'before_blocks', lambda self, x, ctx: x),
        monkeypatch,
        trained=sum(p.requires_grad for p in model.parameters()),
    )
    assert all(m.bias.grad is not None and m.bias.grad.abs().sum() > 0 for m in linears)
    casts, alone_casts = ops['_to_copy'], alone_ops['_to_copy']
    assert alone_casts - casts == 2 * len(linears) - 2, (alone_casts, casts, len(linears))
    # merged (the trained biases are the host's own), inference still casts them at once
    model.eval().merge_tuners()

    def infer():
        with torch.no_grad(), torch.autocast('cpu', torch.bfloat16, enabled=where == 'autocast'):
            return model(x)[0]

    merged, merged_casts = infer(), count_ops(infer)[1]['_to_copy']
    with monkeypatch.context() as patch:
        patch.setattr(BitFit, 'before_blocks', lambda self, x, ctx: x)
        assert torch.equal(merged, infer())
        assert count_ops(infer)[1]['_to_copy'] - merged_casts == len(linears) - 1


def test_bitfit_leaves_a_bias_another_tuner_rewrote_alone():
    """BitFit hands a Linear its one-copy cast only in place of that Linear's own bias: a
    bias an earlier tuner's weight function rewrote passes through as it came."""
    cls, kwargs, _ = HOSTS['vit']
    model = cls(tuners=[dict(type='mmwst.BitFit')], **kwargs)
    bitfit = model.tuners[0]
    linear = bitfit._linears[0]
    cast = linear.bias.detach().to(torch.bfloat16)
    bitfit._cast = {linear: [cast]}
    rewritten = linear.bias + 1
    assert bitfit._cast_bias(linear, linear.weight, linear.bias)[1] is cast
    assert bitfit._cast_bias(linear, linear.weight, rewritten)[1] is rewritten
    other = bitfit._linears[1]
    assert bitfit._cast_bias(other, other.weight, other.bias)[1] is other.bias
