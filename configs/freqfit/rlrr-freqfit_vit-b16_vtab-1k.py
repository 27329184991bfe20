# FreqFit (complex filters) on top of RLRR on a frozen ViT-B/16, one VTAB-1k task;
# FreqFit's SGD recipe, RLRR's zero-initialised head and residual-branch dropout.
_base_ = ['./lora-freqfit_vit-b16_vtab-1k.py']
model = dict(
    backbone=dict(
        drop_path_rate=0.0,
        tuners=[
            dict(type='mmwst.RLRR', branch_drop_rate=0.1),
            dict(type='mmwst.FreqFit', filter_type='complex'),
        ],
    ),
    head=dict(init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0)),
)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
# (RLRR + FreqFit (complex))
trainable_without_head = 288_768 + 2_256_384
