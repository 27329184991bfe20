# RLRR on a frozen ViT-B/16, one VTAB-1k task. The released per-task settings (lr,
# drop, weight decay, horizontal flip; README.md) follow VTAB_TASK automatically.
_base_ = ['../_base_/vtab1k_vit-b16.py']
from mmwst.datasets.vtab import released_settings

# the released per-task settings (released_vtab-1k.json beside this file) follow VTAB_TASK
recipe = released_settings(
    '{{ fileDirname }}/released_vtab-1k.json',
    '{{$VTAB_TASK:cifar}}',
    lr=3e-3,
    drop_path=0.1,
    weight_decay=5e-5,
    hflip=False,
)
# The reference's "drop path" is elementwise dropout on the residual branches (RLRR's
# branch_drop_rate), not the host's stochastic depth, which is switched off.
model = dict(
    backbone=dict(
        drop_path_rate=0.0,
        out_type='cls_token',
        tuners=[dict(type='mmwst.RLRR', branch_drop_rate=recipe['drop_path'])],
    ),
    # zero-initialised linear head on the class token
    head=dict(init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0)),
)
# AdamW, no weight decay on biases and on RLRR's shifts and SSF pairs. The released
# schedule (below): a 100-epoch cosine cycle down to 1e-8 with the 10 warm-up epochs
# (linear from 1e-7) inside it, then 10 epochs at that floor - 110 epochs, the rate set
# once per epoch and one epoch late, as the released loop steps it (delay=1: epochs 0
# and 1 both train at 1e-7).
lr = recipe['lr']
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=recipe['weight_decay']),
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
        type='mmwst.WarmupCosineLR',
        cycle=100,
        warmup=10,
        warmup_start=1e-7,
        eta_min=1e-8,
        delay=1,
        by_epoch=True,
        end=110,
    )
]
train_cfg = dict(max_epochs=110)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    *([dict(type='RandomFlip', prob=0.5, direction='horizontal')] if recipe['hflip'] else []),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 288_768
