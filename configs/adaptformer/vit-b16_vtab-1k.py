_base_ = ['../_base_/vtab1k_vit-b16.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.AdaptFormer', bottleneck=64, scale=0.1)]))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 1_189_632
