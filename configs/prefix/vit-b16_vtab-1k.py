_base_ = [
    '../_base_/models/vit-b16_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
# Prefix tuning: 10 prefix keys/values per block through a 512-wide Linear-tanh-Linear.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PrefixTuning', num_tokens=10, hidden=512)]))
