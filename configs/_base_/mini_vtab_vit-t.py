# The shipped frozen ViT-T/8 (pretrained here on generated fractals; mmwst/weights) on
# one mini-VTAB task (tools/data/make_mini_vtab.py writes them; 32x32 images, 1,000
# training and 500 test images per task). Every method's mini-VTAB config starts here and
# states its own recipe on top: tuners, learning rate, head.
#
# Choose the task and the data root with environment variables (tools/vtab_sweep.py sets
# them):  VTAB_TASK=dsprites_loc VTAB_ROOT=data/mini-vtab python tools/train.py CONFIG
#
# Shared recipe: images as they are (32x32, no augmentation: several structured labels
# are positions and orientations), mean = std = 127.5; AdamW (no decay on 1-D
# parameters), total batch 32, one linear warm-up epoch then cosine to 0 over the
# remaining epochs; evaluated once, at the end. Learning-rate rule: lr scales linearly
# with the total batch (auto_scale_lr, base 32).
_base_ = ['./mmwst_runtime.py']
from mmwst.datasets.vtab import vtab_num_classes
from mmwst.weights import shipped_vit_host

vtab_task = '{{$VTAB_TASK:digits}}'
vtab_root = '{{$VTAB_ROOT:data/mini-vtab}}'
num_classes = vtab_num_classes(vtab_task)
host = shipped_vit_host()  # arch, img_size, patch_size, final_norm, pretrained
embed_dims = host['arch']['embed_dims']
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmwst.TunedVisionTransformer',
        **host,
        drop_path_rate=0.0,
        out_type='cls_token',
        tuners=[],
    ),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=embed_dims,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02),
    ),
)
data_preprocessor = dict(num_classes=num_classes, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)

pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='mmwst.VTAB1k',
        data_root=vtab_root,
        task=vtab_task,
        split='train800val200',
        pipeline=pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='mmwst.VTAB1k', data_root=vtab_root, task=vtab_task, split='test', pipeline=pipeline
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator

lr = 1e-3
warmup_epochs = 1
max_epochs = 8
optim_wrapper = dict(
    constructor='mmwst.TunerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0, norm_decay_mult=0.0, bias_decay_mult=0.0),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=0.0,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=1, save_last=True),
)
randomness = dict(seed=0, deterministic=False)
