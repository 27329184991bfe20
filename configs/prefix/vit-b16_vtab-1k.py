_base_ = ['../_base_/vtab1k_vit-b16.py']
# Prefix tuning: 10 prefix keys/values per block through a 512-wide Linear-tanh-Linear.
model = dict(backbone=dict(tuners=[dict(type='mmwst.PrefixTuning', num_tokens=10, hidden=512)]))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 14_272_512
