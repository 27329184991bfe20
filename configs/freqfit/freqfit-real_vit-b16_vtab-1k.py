# FreqFit with real filters (half the filter parameters) on top of LoRA (r=8, alpha=8 on
# q, k, v, proj, fc1, fc2) on a frozen ViT-B/16; FreqFit's SGD recipe.
_base_ = ['./lora-freqfit_vit-b16_vtab-1k.py']
model = dict(
    backbone=dict(
        tuners=[
            dict(
                type='mmwst.LoRA',
                rank=8,
                alpha=8,
                targets=('q', 'k', 'v', 'proj', 'fc1', 'fc2'),
            ),
            dict(type='mmwst.FreqFit', filter_type='real'),
        ]
    )
)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
# (LoRA on all six Linears + FreqFit (real))
trainable_without_head = 1_327_104 + 1_138_176
