_base_ = ['../_base_/vtab1k_vit-b16.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.BitFit')]))
