# A complete classification run that needs no download: a tiny ViT trained on the
# handwritten-digits task written by tools/data/make_digits_vtab.py (VTAB-1k layout:
# 1,000 training images, 797 test images, 10 classes, 32x32). The whole backbone trains
# (mmwst.FullFineTune) from random weights, or from `model.backbone.pretrained` if set;
# configs/demo/digits_vit_tiny_lora.py then tunes the result with LoRA + SSF.
#
# Total batch size 32 (1 process x 32). Learning-rate rule: scale lr linearly with the
# total batch size (lr = 1e-3 * total_batch / 32) when running on N processes.
_base_ = ['../_base_/mmwst_runtime.py']

vtab_task = '{{$VTAB_TASK:digits}}'
vtab_root = '{{$VTAB_ROOT:data/vtab-1k}}'
num_classes = 10
image_size = 32

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmwst.TunedVisionTransformer',
        tuners=[dict(type='mmwst.FullFineTune')],
        pretrained=None,
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=image_size,
        patch_size=4,
        drop_rate=0.0,
        drop_path_rate=0.0,
        out_type='cls_token',
    ),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss'),
    ),
)

# images are stored as 0-255 RGB; normalise to [-1, 1] (mean = std = 0.5 * 255)
data_preprocessor = dict(num_classes=num_classes, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=False)

train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='mmwst.VTAB1k',
        data_root=vtab_root,
        task=vtab_task,
        split='train800val200',
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='mmwst.VTAB1k',
        data_root=vtab_root,
        task=vtab_task,
        split='test',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator

max_epochs = 30
optim_wrapper = dict(
    constructor='mmwst.TunerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=3,
        end=max_epochs,
        eta_min=1e-6,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2, save_last=True),
)
randomness = dict(seed=0, deterministic=False)
