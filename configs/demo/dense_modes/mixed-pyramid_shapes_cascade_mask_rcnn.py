# The shapes detector on WST + HST through the ViT with the mixed pyramid
# (pyramid='mixed'): WST's branch gives the maps at strides 4 and 8 (widths D/4 = 32 on
# the shipped ViT-T/8), the side network's last two stages those at 16 and 32 (widths 64,
# 96), at the earlier budget (200 images, 10 epochs): the runs of the mixed-pyramid table
# in docs/dense_modes.md. The demo's detector is this pyramid at its own budget.
_base_ = ['./earlier-budget_shapes_cascade_mask_rcnn.py']
