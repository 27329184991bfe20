# PATT (kv, r=8, s=0.8) on a frozen ViT-B/16, one FGVC dataset (FGVC_DATASET, default cub).
_base_ = ['../_base_/fgvc_vit-b16.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.PATT', rank=8, scale=0.8, mode='kv')]))
