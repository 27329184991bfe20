# Semantic segmentation that needs no download and runs on a laptop CPU: UperNet (mmseg)
# with the dense WST + HST backbone beside the shipped frozen ViT-T/8, trained on
# procedurally generated shapes (128x128 images; background, circle, square, triangle;
# label PNGs written by mmwst.datasets.generation.shapes.write_shapes_dataset) and
# evaluated with mmseg's IoUMetric (mIoU).
#
# Beside the ViT (host_grad=False): the frozen ViT runs without autograd, and what learns
# is the WST branch, the side network and the heads. The recipe was chosen on seed 0
# against the validation images (docs/dense_modes.md, "Choosing the segmentor's recipe"):
# 1,000 training images, random rotations by any angle (a rotated shape keeps its class),
# lr 2e-3. CPU settings: one scale, fp32, no data
# workers, narrow heads (64 channels), BatchNorm instead of SyncBN. Total batch 8
# (1 process x 8); linear lr rule lr = 2e-3 x total_batch / 8.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/dense/shapes_demo_runtime.py',
]

from mmwst.weights import shipped_vit_host

data_root = '{{$SHAPES_ROOT:data/shapes}}/'
classes = ('background', 'circle', 'square', 'triangle')
# mmwst.datasets.generation.shapes.SEG_PALETTE: black background, one colour per shape
palette = [[0, 0, 0], [220, 20, 60], [0, 160, 255], [255, 200, 0]]
image_size = 128
vit = shipped_vit_host(img_size=image_size)
side_channels = (32, 48, 64, 96)  # HST side-network widths = the four map widths
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(image_size, image_size)),
    backbone=dict(
        _delete_=True,
        type='mmwst.DenseTunedViT',
        **vit,  # the shipped ViT-T/8: arch, patch 8, weights (mmwst/weights)
        drop_path_rate=0.0,
        host_grad=False,  # beside the ViT: no backward pass through the frozen blocks
        wst=dict(rank=2, scale=1.0),
        hst=dict(channels=side_channels, num_heads=(1, 2, 2, 4)),
    ),
    decode_head=dict(
        in_channels=list(side_channels),
        channels=64,
        num_classes=len(classes),
        norm_cfg=norm_cfg,
    ),
    auxiliary_head=dict(
        in_channels=side_channels[2],  # the stride-16 map
        in_index=2,
        channels=32,
        num_classes=len(classes),
        norm_cfg=norm_cfg,
    ),
    test_cfg=dict(mode='whole'),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # a shape keeps its class when rotated: any angle, 3 times in 4 (the label map with
    # nearest-neighbour interpolation; the corners turned in are filled as background)
    dict(type='RandomRotate', prob=0.75, degree=180, pad_val=0, seg_pad_val=0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False,
)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='train', seg_map_path='seg/train'),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='val', seg_map_path='seg/val'),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# 1,200 iterations of batch 8 (about 10 epochs of the 1,000 images)
max_iters = 1200
lr = 2e-3
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='mmwst.TunerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=8)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    # every 200 iterations, so that an interrupted demo resumes (--resume auto) from there
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=1, save_last=True
    ),
)
log_processor = dict(by_epoch=False, window_size=20)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
