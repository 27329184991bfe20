# Mona (r = 64) in every block of a frozen Swin-B, the host of the authors' release; one
# VTAB-1k task, mmwst's shared AdamW recipe.
_base_ = ['../_base_/vtab1k_swin-b.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.Mona', bottleneck=64)]))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
# (48 adapters, r = 64)
trainable_without_head = 3_667_456
