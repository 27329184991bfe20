# WST + HST on COCO (Cascade Mask R-CNN) with a frozen EVA-02-L/14 as the host
# (Fang et al., "EVA-02: A Visual Representation for Neon Genesis", 2023): the same dense
# backbone (mmwst.DenseTunedEVA02), detector, 3x recipe and data as configs/wst_coco.py.
#
# The host: 24 layers, width 1024, patch 14, rotary position embeddings on the patch
# tokens (their reference grid is the 16 x 16 of the 224-pixel pretraining; each input's
# grid is mapped onto it), SwiGLU MLPs with sub-LN. WST's fine branch embeds the image at
# half the patch, 7 pixels; the side network's 4 stages read 6 layers each; through the
# ViT, HST's meta token sits in front of the class token, which the rotary embedding leaves
# unrotated. Every batch is padded to a multiple of 224, the smallest size both the patch
# (14) and the detector's coarsest FPN input (32) divide.
#
# On disk: timm's eva02_large_patch14_224.mim_m38m (or .mim_in22k) state dict at
# checkpoints/eva02_large_patch14_224.pth (or set model.backbone.pretrained); sub-LN and the
# final norm are read from the file.
_base_ = ['../../wst_coco.py']

pretrained = 'checkpoints/eva02_large_patch14_224.pth'
model = dict(
    data_preprocessor=dict(pad_size_divisor=224),
    backbone=dict(
        type='mmwst.DenseTunedEVA02',
        arch='eva02-l',
        img_size=224,
        patch_size=14,
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
        "The frozen EVA-02-L/14: timm's eva02_large_patch14_224.mim_m38m (or .mim_in22k) "
        'state dict at checkpoints/eva02_large_patch14_224.pth (or set '
        'model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
