# WST + HST on ADE20K (UperNet) with a frozen DINOv2-L/14 with 4 register tokens: the same
# dense backbone, segmentor, 160k recipe and data as configs/wst_ade20k.py. The host and
# the file it reads: configs/dense/dinov2/dense_dinov2-l-reg4_coco.py.
#
# Crops of 518 x 518 (the release's grid, 37 x 37 patches) instead of 512, whole images
# padded to a multiple of the patch (14), sliding-window inference over the same crops (all
# from ../../_base_/dense/ade20k_patch14.py).
_base_ = ['../../wst_ade20k.py', '../../_base_/dense/ade20k_patch14.py']

pretrained = 'checkpoints/dinov2_vitl14_reg4_pretrain.pth'
crop_size = {{_base_.patch14_crop}}
model = dict(
    data_preprocessor={{_base_.patch14_data_preprocessor}},
    backbone=dict(
        arch='dinov2-l',
        img_size=crop_size,
        patch_size=14,
        num_register_tokens=4,
        drop_path_rate=0.3,
        pretrained=pretrained,
    ),
    test_cfg={{_base_.patch14_test_cfg}},
)
train_pipeline = {{_base_.patch14_train_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='ADE20K into data/ade/ (or ADE20K_ROOT=DIR), as configs/wst_ade20k.py says. '
        'The frozen DINOv2-L/14 with registers: the released '
        'dinov2_vitl14_reg4_pretrain.pth (or timm vit_large_patch14_reg4_dinov2 weights) '
        'at checkpoints/dinov2_vitl14_reg4_pretrain.pth (or set model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
