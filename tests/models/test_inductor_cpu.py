"""The default ``torch.compile`` backend (inductor) on the CPU, forward and backward.

Two models met bugs of torch 2.11's CPU code generation and now avoid them: the side
network's bilinear resizes (the generated backward read a buffer before allocating it:
``UnboundLocalError``; they are matrix products now, ``mmwst.models.layers.resize``) and
FreqFit's Fourier filters (the CPU FFT's output strides differ from the ones the
compiler predicts for a transform over middle dimensions; the transforms run over the
last dimensions now). Compiled, each gives eager's values and gradients.

Under bf16 autocast HST's side network and Mona pass their convolutions' weights cast in
one copy (views of it); inductor's convolution takes no bias that is a view, so the
biases stay the modules' own, and both compile.
"""

import os
import shutil

import pytest
import torch

from mmwst.models import DenseTunedViT, TunedVisionTransformer
from mmwst.models.layers import SpectralFilter1d, SpectralFilter2d

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get('CXX', 'g++'), 'g++', 'c++', 'clang++')),
    reason="inductor's CPU code needs a C++ compiler (g++ or clang++) on PATH",
)


def _compiled_matches_eager(module, inputs, loss):
    """One forward and backward of ``module`` eager and compiled with inductor: the
    outputs and every gradient (inputs' and parameters') agree."""

    def run(fn):
        value = loss(fn(*inputs))
        leaves = [t for t in (*inputs, *module.parameters()) if t.requires_grad]
        return value, torch.autograd.grad(value, leaves)

    torch._dynamo.reset()
    eager_loss, eager_grads = run(module)
    compiled_loss, compiled_grads = run(torch.compile(module, backend='inductor'))
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-5)
    assert len(compiled_grads) == len(eager_grads)
    for got, want in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_dense_backbone_trains_compiled():
    """The WST branch and the HST side network on a frozen ViT: the side network resizes
    the ViT's maps and the branch's (stride 16 and 8 up to 4), the branch's pyramid too."""
    torch.manual_seed(0)
    model = DenseTunedViT(
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
        img_size=32,
        patch_size=8,
        wst=dict(rank=2),
        hst=dict(channels=(16, 32, 48, 64), num_heads=(1, 2, 2, 4)),
    )
    model.init_weights()
    model.train()
    image = torch.randn(2, 3, 32, 32)
    _compiled_matches_eager(model, (image,), lambda maps: sum(m.square().mean() for m in maps))


@pytest.mark.parametrize('kind', ['1d', '2d', 'tuner'])
def test_freqfit_filters_compile(kind):
    """The filters' written-out backward (``spectral_product``), and in the tuner the
    update added after the class token (``_AddAfter``)."""
    torch.manual_seed(0)
    if kind == '2d':
        layer, x = SpectralFilter2d(32, (4, 6), 'complex'), torch.randn(2, 4, 6, 32)
    elif kind == '1d':
        layer, x = SpectralFilter1d(32, 17, 'complex'), torch.randn(2, 17, 32)
    else:
        arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        tuners = [dict(type='mmwst.FreqFit')]
        layer = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=tuners)
        layer.init_weights()
        x = torch.randn(2, 3, 32, 32)
        weights = torch.linspace(-1, 1, 2 * 32).reshape(2, 32)  # the class token's output
        _compiled_matches_eager(layer, (x,), lambda out: (out[-1] * weights).sum())
        return
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    _compiled_matches_eager(layer, (x.requires_grad_(),), lambda out: out.square().sum())


@pytest.mark.parametrize('tuner', ['hst', 'mona'])
def test_one_copy_casts_compile_under_bf16_autocast(tuner):
    """HST (the stem's and patch embeddings' convolutions) and Mona (its depthwise
    convolutions) under bf16 autocast, where their weights come from one cast copy:
    compiled with inductor, one forward and backward gives eager's loss and gradients
    (to bf16's precision)."""
    torch.manual_seed(0)
    cfg = {
        'hst': dict(type='mmwst.HST', channels=(8, 12, 16, 32), num_heads=(1, 2, 2, 4)),
        'mona': dict(type='mmwst.Mona', bottleneck=8, dropout=0.0),
    }[tuner]
    layers = 4 if tuner == 'hst' else 2  # HST: one side block per stage
    arch = dict(embed_dims=32, num_layers=layers, num_heads=2, feedforward_channels=64)
    model = TunedVisionTransformer(arch=arch, img_size=32, patch_size=8, tuners=[cfg])
    model.init_weights()
    model.train()
    image = torch.randn(2, 3, 32, 32)
    trained = [p for p in model.parameters() if p.requires_grad]

    def run(fn, bf16=True):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            out = fn(image)[0].float()
            loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum()
        return loss, torch.cat([g.flatten() for g in torch.autograd.grad(loss, trained)])

    torch._dynamo.reset()
    _, float32 = run(model, bf16=False)
    eager_loss, eager = run(model)
    compiled_loss, compiled = run(torch.compile(model, backend='inductor'))
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-2, atol=1e-2)
    # all gradients as one vector: compiled and eager differ by less than twice bf16's
    # own error against float32 (about 1%; fused kernels round elsewhere than eager's)
    bf16_error = ((eager - float32).norm() / float32.norm()).item()
    assert 0 < bf16_error < 0.05
    assert ((compiled - eager).norm() / eager.norm()).item() < 2 * bf16_error
