# Mona (r = 64) in every block of a frozen Swin-B on ADE20K with UperNet - the host and
# segmentor of the Mona paper's ADE20K results - trained with mmwst's ADE20K recipe
# (../_base_/dense/upernet_ade20k-160k.py: 160k iterations of 512x512 crops, AdamW at lr
# 1e-4 for total batch 16, slide inference). Swin-B's four stages (widths 128 / 256 / 512
# / 1024 at strides 4 / 8 / 16 / 32) feed the decode head, the stride-16 map the auxiliary
# head. A classification checkpoint holds the last stage's norm only; the other three
# start at weight 1, bias 0 and stay frozen, as in the release.
#
#   python tools/train.py configs/mona/swin-b_ade20k.py
#   tools/dist_train.sh configs/mona/swin-b_ade20k.py 8
_base_ = ['../_base_/dense/upernet_ade20k-160k.py', './_swin_b.py']

pretrained = {{_base_.mona_swin_pretrained}}
swin_widths = [128, 256, 512, 1024]  # its four stages
model = dict(
    backbone={{_base_.mona_swin_backbone}},
    decode_head=dict(in_channels=swin_widths),
    auxiliary_head=dict(in_channels=swin_widths[2]),  # the stride-16 map
)
custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='ADE20K (SceneParsing, ADEChallengeData2016.zip from '
        'http://sceneparsing.csail.mit.edu) unpacked into data/ade/ (or set '
        'ADE20K_ROOT=DIR), giving images/{training,validation} and '
        'annotations/{training,validation}. The frozen Swin-B is an mmpretrain '
        'ImageNet-21k Swin-B checkpoint (window 7), put at checkpoints/swin-base_in21k.pth '
        '(or set model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
