_base_ = ['../_base_/vtab1k_swin-b.py']
# Swin-BAPAT (V-PETL): PATT on keys and values of every window attention (r = 128, s = 0.8)
# plus an AdaptFormer bottleneck beside every MLP (64 wide, scale 0.1); the head is new.
model = dict(
    backbone=dict(
        tuners=[
            dict(type='mmwst.PATT', rank=128, scale=0.8, mode='kv'),
            dict(type='mmwst.AdaptFormer', bottleneck=64, scale=0.1),
        ]
    )
)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
# (PATT (kv, r=128) + AdaptFormer (r=64) in 24 blocks)
trainable_without_head = 6_201_088
