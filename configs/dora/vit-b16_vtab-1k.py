# DoRA (Liu et al., ICML 2024): LoRA on the direction of q and v, a learned magnitude per
# output row, on a frozen ViT-B/16, one VTAB-1k task, the shared AdamW recipe.
_base_ = ['../_base_/vtab1k_vit-b16.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.DoRA', rank=8, alpha=8, targets=('q', 'v'))]))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 313_344
