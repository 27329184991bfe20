# HST (hierarchical side-tuning) on a frozen AugReg ImageNet-21k ViT-B/16, one VTAB-1k task.
# Recipe of the reference code: AdamW without weight decay on 1-D parameters, effective
# batch 64 (the reference ran 2 GPUs x 32; here 1 GPU x 64: with N GPUs set
# train_dataloader.batch_size = 64 // N), a 100-epoch cosine cycle down to 1e-8 with 10
# linear warm-up epochs from 1e-7 inside it, then 10 cool-down epochs at that minimum
# (110 epochs in all, the rate updated once per epoch, as released).
# Per-task lr / weight decay / drop-path are in README.md; the values below are cifar's.
_base_ = ['../_base_/vtab1k_vit-b16.py']
pretrained = 'checkpoints/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz'
from mmwst.datasets.vtab import released_settings

# the released per-task settings (released_vtab-1k.json beside this file) follow VTAB_TASK
# (defaults: cifar's)
recipe = released_settings(
    '{{ fileDirname }}/released_vtab-1k.json',
    '{{$VTAB_TASK:cifar}}',
    lr=1e-2,
    weight_decay=5e-4,
    drop_path=0.0,
)
lr = recipe['lr']
weight_decay = recipe['weight_decay']
drop_path = recipe['drop_path']  # the frozen ViT blocks and the side network alike
warmup_lr = 1e-7
min_lr = 1e-8
warmup_epochs = 10  # inside the cosine cycle
cosine_epochs = 100  # the cosine cycle, warm-up included
cooldown_epochs = 10
batch_size = 64

model = dict(
    backbone=dict(
        pretrained=pretrained,
        drop_path_rate=drop_path,
        tuners=[
            dict(
                type='mmwst.HST',
                channels=(32, 48, 64, 72),
                num_heads=(2, 4, 8, 12),
                mlp_ratio=4.0,
                drop_path_rate=drop_path,
                output='cls',
            )
        ],
    ),
    neck=None,
    head=dict(
        _delete_=True,
        type='mmwst.HSTClsHead',
        num_classes={{_base_.num_classes}},
        in_channels=72,
        loss=dict(type='CrossEntropyLoss'),
    ),
)

train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=lr, weight_decay=weight_decay),
    # no decay on 1-D parameters (norms, biases); the meta tokens (1, 1, D) decay
    paramwise_cfg=dict(flat_decay_mult=0.0, norm_decay_mult=0.0, bias_decay_mult=0.0),
)
# The released schedule (timm's cosine in the HST code): a 100-epoch cosine cycle with the
# 10 warm-up epochs inside it, then 10 cool-down epochs at the minimum - 110 epochs, the
# rate set once per epoch (epoch e trains at the curve's value at e).
param_scheduler = [
    dict(
        type='mmwst.WarmupCosineLR',
        cycle=cosine_epochs,
        warmup=warmup_epochs,
        warmup_start=warmup_lr,
        eta_min=min_lr,
        by_epoch=True,
        end=cosine_epochs + cooldown_epochs,
    )
]
train_cfg = dict(max_epochs=cosine_epochs + cooldown_epochs, val_interval=10)
auto_scale_lr = dict(base_batch_size=batch_size)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 764_840
