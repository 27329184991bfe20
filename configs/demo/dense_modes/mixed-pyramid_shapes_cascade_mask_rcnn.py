# The shapes detection demo (../shapes_cascade_mask_rcnn.py) on WST + HST through the ViT
# with the mixed pyramid (pyramid='mixed'): WST's branch gives the maps at strides 4 and 8
# (widths D/4 = 32 on the shipped ViT-T/8), the side network's last two stages those at
# 16 and 32 (widths 64, 96). The side network's own stride-4/8 maps do not train the RoI
# heads on these images (docs/dense_modes.md, "Why the side network's pyramid does not
# detect"); everything else is the demo's.
_base_ = ['./through-vit_shapes_cascade_mask_rcnn.py']

model = dict(
    backbone=dict(pyramid='mixed'),
    neck=dict(in_channels=[32, 32, 64, 96]),
)
