_base_ = ['../_base_/vtab1k_swin-b.py']
# Prefix tuning: 10 prefix keys/values per block, shared by every window of the block.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PrefixTuning', num_tokens=10, hidden=512)]))
