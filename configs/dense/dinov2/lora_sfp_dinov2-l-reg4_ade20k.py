# LoRA (r=8 on q and v) on ADE20K with a frozen DINOv2-L/14 with 4 registers, through the
# plain-ViT pyramid (the stride-14 map resampled to the stride-16 grid, then
# mmwst.SimpleFeaturePyramid): the same UperNet, recipe and data as
# configs/dense/lora_sfp_ade20k.py, with the 518 x 518 crops of the patch-14 hosts
# (../../_base_/dense/ade20k_patch14.py). The host and the file it reads:
# configs/dense/dinov2/dense_dinov2-l-reg4_coco.py.
_base_ = ['../lora_sfp_ade20k.py', '../../_base_/dense/ade20k_patch14.py']

pretrained = 'checkpoints/dinov2_vitl14_reg4_pretrain.pth'
crop_size = {{_base_.patch14_crop}}
vit_width = 1024
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
    neck=dict(in_channels=vit_width, in_stride=14),
    decode_head=dict(in_channels=[vit_width // 4, vit_width // 2, vit_width, vit_width]),
    auxiliary_head=dict(in_channels=vit_width),
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
