# Mona (r = 64, the release's) in every block of a frozen ViT-B/16, one VTAB-1k task,
# mmwst's shared AdamW recipe (the paper reports no VTAB-1k recipe of its own).
_base_ = ['../_base_/vtab1k_vit-b16.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.Mona', bottleneck=64)]))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 2_684_928
