_base_ = ['../_base_/vtab1k_vit-b16.py']
# PATT (V-PETL) on keys and values of every block; r = 8 suits VTAB-1k (the paper's r = 128
# is meant for video).
model = dict(backbone=dict(tuners=[dict(type='mmwst.PATT', rank=8, scale=0.8, mode='kv')]))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 239_712
