# Cascade Mask R-CNN on COCO 2017 instances (mmdet), with a frozen ViT-B/16 and the dense
# WST + HST backbone (mmwst.DenseTunedViT: four maps at strides 4/8/16/32) feeding mmdet's
# FPN. Everything except the backbone, the optimizer and the paths is mmdet's own
# Cascade Mask R-CNN ms-3x config, inherited, not copied:
#   - 3x schedule = 36 COCO epochs, run the way mmdet's 3x recipes run them: 12 epochs
#     over RepeatDataset(times=3), lr x0.1 after 9 and 11 of them (COCO epochs 27 and
#     33), 500 linear warm-up iterations; validation and checkpoint every 3 COCO epochs;
#   - multi-scale training: RandomResize of the short side to 640-800 (long side <= 1333,
#     aspect kept) and random flip; test at (1333, 800);
#   - the data preprocessor pads every batch to a multiple of 32, which is also a
#     multiple of the patch size 16, so every input fits the ViT's patch grid.
#
# Total batch 16 (8 GPUs x 2 images). Linear scaling rule: lr = 1e-4 x total_batch / 16;
# auto_scale_lr applies it when the run uses another total batch.
#
# On disk (checked at start by mmwst.CheckPathsHook, which names what is missing):
#   data/coco/ (or COCO_ROOT=DIR/): annotations/instances_{train,val}2017.json, train2017/,
#   val2017/; checkpoints/ViT-B_16.npz (or --cfg-options model.backbone.pretrained=PATH).
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco.py',
    './runtime.py',
]

data_root = '{{$COCO_ROOT:data/coco/}}'
pretrained = 'checkpoints/ViT-B_16.npz'
side_channels = (64, 128, 256, 384)  # HST side-network widths = the four map widths

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmwst.DenseTunedViT',
        arch='b',
        img_size=224,  # the checkpoint's grid; position embeddings follow each input
        patch_size=16,
        drop_path_rate=0.1,
        pretrained=pretrained,
        wst=dict(rank=2, scale=1.0),
        hst=dict(channels=side_channels, num_heads=(2, 4, 8, 12)),
    ),
    neck=dict(type='FPN', in_channels=list(side_channels), out_channels=256, num_outs=5),
)

train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
# mmdet's ms-3x instance config evaluates boxes only; report masks too
val_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val2017.json', metric=['bbox', 'segm']
)
test_evaluator = val_evaluator

# AdamW, no weight decay on 1-D parameters (biases, norms, meta tokens' scales);
# frozen ViT weights never enter the optimizer.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmwst.TunerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
)
auto_scale_lr = dict(enable=True, base_batch_size=16)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))

custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='COCO 2017: download "2017 Train images", "2017 Val images" and "2017 '
        'Train/Val annotations" from https://cocodataset.org/#download and unpack them '
        'into data/coco/ (or set COCO_ROOT=DIR/), giving annotations/'
        'instances_{train,val}2017.json, train2017/ and val2017/. The frozen ViT-B/16 '
        "is Google's ImageNet-21k ViT-B_16.npz, put at checkpoints/ViT-B_16.npz (or set "
        'model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
