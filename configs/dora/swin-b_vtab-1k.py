# DoRA (Liu et al., ICML 2024) on q and v of every window attention of a frozen Swin-B.
_base_ = ['../_base_/vtab1k_swin-b.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.DoRA', rank=8, alpha=8, targets=('q', 'v'))]))
