# Mona (r = 64) in every block of a frozen Swin-B on COCO with Cascade Mask R-CNN - the
# host and detector of the Mona paper's COCO results - trained with mmwst's COCO recipe
# (../_base_/dense/cascade-mask-rcnn_coco-ms-3x.py: 36 epochs, multi-scale, AdamW at lr
# 1e-4 for total batch 16) so that it compares with the other dense configs. Swin-B's
# four stages (widths 128 / 256 / 512 / 1024 at strides 4 / 8 / 16 / 32, each through its
# own LayerNorm) feed mmdet's FPN. A classification checkpoint holds the last stage's norm
# only; the other three start at weight 1, bias 0 and stay frozen, as in the release.
#
#   python tools/train.py configs/mona/swin-b_coco.py
#   tools/dist_train.sh configs/mona/swin-b_coco.py 8
_base_ = ['../_base_/dense/cascade-mask-rcnn_coco-ms-3x.py', './_swin_b.py']

pretrained = {{_base_.mona_swin_pretrained}}
swin_widths = [128, 256, 512, 1024]  # its four stages
model = dict(
    backbone={{_base_.mona_swin_backbone}},
    neck=dict(in_channels=swin_widths),
)
custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='COCO 2017: download "2017 Train images", "2017 Val images" and "2017 '
        'Train/Val annotations" from https://cocodataset.org/#download and unpack them '
        'into data/coco/ (or set COCO_ROOT=DIR/), giving annotations/'
        'instances_{train,val}2017.json, train2017/ and val2017/. The frozen Swin-B is an '
        'mmpretrain ImageNet-21k Swin-B checkpoint (window 7), put at '
        'checkpoints/swin-base_in21k.pth (or set model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
