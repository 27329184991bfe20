_base_ = ['../_base_/vtab1k_swin-b.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.Adapter', bottleneck=8)]))
