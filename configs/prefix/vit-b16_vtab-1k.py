_base_ = ['../_base_/vtab1k_vit-b16.py']
# Prefix tuning: 10 prefix keys/values per block through a 512-wide Linear-tanh-Linear.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PrefixTuning', num_tokens=10, hidden=512)]))
