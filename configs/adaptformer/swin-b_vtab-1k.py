_base_ = [
    '../_base_/models/swin-b_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
model = dict(backbone=dict(tuners=[dict(type='mmwst.AdaptFormer', bottleneck=64, scale=0.1)]))
