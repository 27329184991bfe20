"""The benchmarked methods: each a backbone with tuners under one linear head."""

from __future__ import annotations

#: name -> backbone tuners (ViT host); 'frozen' is the reference without any tuner.
METHODS: dict[str, list[dict]] = {
    'frozen': [],
    'full_finetune': [dict(type='mmwst.FullFineTune')],
    'linear_probe': [dict(type='mmwst.LinearProbe')],
    'bitfit': [dict(type='mmwst.BitFit')],
    'ln_tune': [dict(type='mmwst.LNTune')],
    'ssf': [dict(type='mmwst.SSF')],
    'lora': [dict(type='mmwst.LoRA', rank=8)],
    'dora': [dict(type='mmwst.DoRA', rank=8)],
    'adapter': [dict(type='mmwst.Adapter', bottleneck=8)],
    'adaptformer': [dict(type='mmwst.AdaptFormer', bottleneck=64)],
    'vpt_deep': [dict(type='mmwst.VPT', num_prompts=10)],
    'wst': [dict(type='mmwst.WST')],
    'hst': [dict(type='mmwst.HST')],
    'freqfit_lora': [dict(type='mmwst.LoRA', rank=8), dict(type='mmwst.FreqFit')],
    'rlrr': [dict(type='mmwst.RLRR')],
    'patt': [dict(type='mmwst.PATT', rank=8)],
    'prefix': [dict(type='mmwst.PrefixTuning')],
    'mona': [dict(type='mmwst.Mona', bottleneck=64)],
    'dense_wst_hst': [],  # mmwst.DenseTunedViT with its defaults (through the ViT)
    'dense_beside_vit': [],  # the same, host_grad=False: never back-propagates the ViT
}
#: Suffix of a method name that turns on gradient checkpointing of the frozen blocks
#: (``with_cp=True``), e.g. ``'rlrr+cp'``.
CP_SUFFIX = '+cp'
#: Run by default after METHODS: the methods whose memory is closest to full fine-tuning,
#: with checkpointing.
CHECKPOINTED = ('ssf+cp', 'rlrr+cp', 'hst+cp', 'dense_wst_hst+cp')
ARCHS = {
    'b': dict(arch='b', patch_size=16),
    'tiny': dict(
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128), patch_size=8
    ),
}


def base_method(method: str) -> str:
    """``'rlrr+cp'`` -> ``'rlrr'``; raises on an unknown name."""
    base = method[: -len(CP_SUFFIX)] if method.endswith(CP_SUFFIX) else method
    if base not in METHODS:
        raise ValueError(
            f'unknown method {method!r}; known: {", ".join(METHODS)} (append {CP_SUFFIX!r} '
            'for gradient checkpointing of the frozen blocks)'
        )
    return base


def build_classifier(
    method: str, arch: str, img_size: int, num_classes: int = 100, frozen_dtype: str | None = None
):
    """The method's backbone under a linear head. ``frozen_dtype`` (``'bf16'``,
    ``'fp16'``) holds the frozen host weights in that type (the hosts' own option; full
    fine-tuning freezes nothing, so it keeps float32 weights)."""
    import torch
    from torch import nn
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from mmwst.models import DenseTunedViT, TunedVisionTransformer

    kwargs = dict(ARCHS[arch], img_size=img_size, with_cp=method.endswith(CP_SUFFIX))
    if frozen_dtype is not None:
        kwargs['frozen_dtype'] = frozen_dtype
    method = base_method(method)
    if method in ('dense_wst_hst', 'dense_beside_vit'):
        if arch == 'tiny':
            kwargs['hst'] = dict(channels=(16, 32, 48, 64), num_heads=(1, 2, 2, 4))
        backbone = DenseTunedViT(host_grad=method == 'dense_wst_hst', **kwargs)
    else:
        tuners = list(METHODS[method])
        if method == 'hst' and arch == 'tiny':
            tuners = [dict(type='mmwst.HST', channels=(8, 12, 16, 32), num_heads=(1, 2, 2, 4))]
        out_type = 'avg_patch' if method == 'wst' else 'cls_token'
        backbone = TunedVisionTransformer(tuners=tuners, out_type=out_type, **kwargs)
    backbone.init_weights()  # the hosts give DropPath float rates: one graph each

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            # the head's width, from one forward on the CPU; under the math kernel, since a
            # measurement may have pinned a GPU-only attention backend (--sdpa efficient
            # or cudnn) that no CPU attention can run
            with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
                feat = self._pool(backbone(torch.zeros(1, 3, img_size, img_size)))
            self.head = nn.Linear(feat.shape[-1], num_classes)

        @staticmethod
        def _pool(outs):
            feat = outs[-1]
            return feat.mean(dim=(2, 3)) if feat.dim() == 4 else feat

        def forward(self, x):
            return self.head(self._pool(self.backbone(x)))

    return Classifier()
