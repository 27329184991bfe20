_base_ = ['../_base_/vtab1k_swin-b.py']
# PATT (V-PETL) on keys and values inside every window attention; r = 8 as on ViT-B/16.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PATT', rank=8, scale=0.8, mode='kv')]))
