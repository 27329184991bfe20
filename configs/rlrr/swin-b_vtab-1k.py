# RLRR on a frozen Swin-B (every block of every stage, the patch embedding and the final
# norm), one VTAB-1k task; the same recipe as the ViT-B/16 config.
_base_ = ['../_base_/vtab1k_swin-b.py']
model = dict(
    backbone=dict(drop_path_rate=0.0, tuners=[dict(type='mmwst.RLRR', branch_drop_rate=0.1)]),
    head=dict(init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0)),
)
lr = 3e-3
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=5e-5),
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.shift.': dict(decay_mult=0.0),
            '.gamma.': dict(decay_mult=0.0),
            '.beta.': dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-7 / lr,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=10,
        end=110,
        eta_min=1e-8,
        convert_to_iter_based=True,
    ),
]
