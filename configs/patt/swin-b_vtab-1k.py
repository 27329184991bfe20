_base_ = [
    '../_base_/models/swin-b_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
# PATT (V-PETL) on keys and values inside every window attention; r = 8 as on ViT-B/16.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PATT', rank=8, scale=0.8, mode='kv')]))
