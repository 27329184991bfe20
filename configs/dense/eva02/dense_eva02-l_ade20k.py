# WST + HST on ADE20K (UperNet) with a frozen EVA-02-L/14: the same dense backbone,
# segmentor, 160k recipe and data as configs/wst_ade20k.py. The host and the file it
# reads: configs/dense/eva02/dense_eva02-l_coco.py.
#
# Crops of 518 x 518 (37 x 37 patches) instead of 512 (mmseg's resizing is kept),
# sliding-window inference over the same crops; whole images are padded to a multiple of
# the patch (14). The rotary embedding maps each input's grid onto the 16 x 16 reference
# grid of the 224-pixel pretraining.
_base_ = ['../../wst_ade20k.py']

pretrained = 'checkpoints/eva02_large_patch14_224.pth'
crop_size = (518, 518)
model = dict(
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=14)),
    backbone=dict(
        type='mmwst.DenseTunedEVA02',
        arch='eva02-l',
        img_size=crop_size,
        patch_size=14,
        rope_ref_grid=(16, 16),
        drop_path_rate=0.3,
        pretrained=pretrained,
    ),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='ADE20K into data/ade/ (or ADE20K_ROOT=DIR), as configs/wst_ade20k.py says. '
        "The frozen EVA-02-L/14: timm's eva02_large_patch14_224.mim_m38m (or .mim_in22k) "
        'state dict at checkpoints/eva02_large_patch14_224.pth (or set '
        'model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
