# Mona (r = 64) in every block of a frozen Swin-B, the host of the authors' release; one
# VTAB-1k task, mmwst's shared AdamW recipe.
_base_ = ['../_base_/vtab1k_swin-b.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.Mona', bottleneck=64)]))
