# WST + HST on COCO (Cascade Mask R-CNN) with a frozen DINOv2-L/14 with 4 register tokens
# (Darcet et al., "Vision Transformers Need Registers", ICLR 2024) as the host: the same
# dense backbone, detector, 3x recipe and data as configs/wst_coco.py.
#
# The host: 24 layers, width 1024, patch 14, layer scale, 4 registers after the class token
# (no position embedding), built at the release's 518x518 grid; its position embeddings
# follow each input. WST's fine branch embeds the image at half the patch, 7 pixels; the
# side network's 4 stages read 6 layers each. Every batch is padded to a multiple of 224,
# the smallest size both the patch (14) and the detector's coarsest FPN input (32) divide.
#
# On disk: the released weights, dinov2_vitl14_reg4_pretrain.pth (the DINOv2 repository's
# model card lists them), or timm's vit_large_patch14_reg4_dinov2 state dict, at
# checkpoints/dinov2_vitl14_reg4_pretrain.pth (or set model.backbone.pretrained). Either
# layout converts on load; registers and layer scale are checked against the file.
_base_ = ['../../wst_coco.py']

pretrained = 'checkpoints/dinov2_vitl14_reg4_pretrain.pth'
model = dict(
    data_preprocessor=dict(pad_size_divisor=224),
    backbone=dict(
        arch='dinov2-l',  # patch 14, layer scale, image size 518
        img_size=518,
        patch_size=14,
        num_register_tokens=4,
        drop_path_rate=0.3,
        pretrained=pretrained,
    ),
    # the mixed pyramid of configs/wst_coco.py: WST's branch at D/4 = 256, the side's 256, 384
    neck=dict(in_channels=[256, 256, 256, 384]),
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
