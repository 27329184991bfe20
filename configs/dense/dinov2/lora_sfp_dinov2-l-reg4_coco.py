# LoRA (r=8 on q and v) on COCO with a frozen DINOv2-L/14 with 4 registers, through the
# plain-ViT pyramid: the stride-14 feature map is resampled to the stride-16 grid and
# mmwst.SimpleFeaturePyramid builds strides 4/8/16/32 from it (ViTDet), then mmdet's FPN and
# the same Cascade Mask R-CNN, recipe and data as configs/dense/lora_sfp_coco.py. The
# host and the file it reads: configs/dense/dinov2/dense_dinov2-l-reg4_coco.py.
_base_ = ['../lora_sfp_coco.py']

pretrained = 'checkpoints/dinov2_vitl14_reg4_pretrain.pth'
vit_width = 1024
model = dict(
    data_preprocessor=dict(pad_size_divisor=224),
    backbone=dict(
        arch='dinov2-l',
        img_size=518,
        patch_size=14,
        num_register_tokens=4,
        drop_path_rate=0.3,
        pretrained=pretrained,
    ),
    neck=[
        dict(type='mmwst.SimpleFeaturePyramid', in_channels=vit_width, in_stride=14),
        dict(
            type='FPN',
            in_channels=[vit_width // 4, vit_width // 2, vit_width, vit_width],
            out_channels=256,
            num_outs=5,
        ),
    ],
)
custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='COCO 2017 into data/coco/ (or COCO_ROOT=DIR/), as configs/wst_coco.py says. '
        'The frozen DINOv2-L/14 with registers: the released '
        'dinov2_vitl14_reg4_pretrain.pth (or timm vit_large_patch14_reg4_dinov2 weights) '
        'at checkpoints/dinov2_vitl14_reg4_pretrain.pth (or set model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
