_base_ = [
    '../_base_/models/swin-b_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
# Prefix tuning: 10 prefix keys/values per block, shared by every window of the block.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PrefixTuning', num_tokens=10, hidden=512)]))
