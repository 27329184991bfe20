# RLRR on a frozen ViT-B/16, one VTAB-1k task (cifar: lr 3e-3, drop 0.1, wd 5e-5, no flip;
# the other tasks' settings are in README.md).
_base_ = [
    '../_base_/models/vit-b16_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
# The reference's "drop path" is elementwise dropout on the residual branches (RLRR's
# branch_drop_rate), not the host's stochastic depth, which is switched off.
model = dict(
    backbone=dict(
        drop_path_rate=0.0,
        out_type='cls_token',
        tuners=[dict(type='mmwst.RLRR', branch_drop_rate=0.1)],
    ),
    # zero-initialised linear head on the class token
    head=dict(init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0)),
)
# AdamW, no weight decay on biases and on RLRR's shifts and SSF pairs; 10 warm-up
# epochs from 1e-7, then cosine to 1e-8 over 100 epochs.
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
