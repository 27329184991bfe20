_base_ = [
    '../_base_/models/vit-b16_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
model = dict(backbone=dict(tuners=[dict(type='mmwst.SSF')]))
