_base_ = ['../_base_/vtab1k_swin-b.py']
model = dict(backbone=dict(tuners=[dict(type='mmwst.VPT', num_prompts=10, deep=True)]))
