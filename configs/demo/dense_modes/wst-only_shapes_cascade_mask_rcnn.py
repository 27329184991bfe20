# The shapes detector with the WST branch alone (hst=None) and WST's pyramid of the branch
# state and the last patch map, widths (D/4, D/4, D, D) = (32, 32, 128, 128) for the
# shipped ViT-T/8, at the earlier budget (200 images, 10 epochs): the demo's detector
# before it moved to the mixed pyramid, and a variant of the trade-off table in
# docs/dense_modes.md.
_base_ = ['./earlier-budget_shapes_cascade_mask_rcnn.py']

model = dict(
    backbone=dict(hst=None, pyramid='wst'),
    neck=dict(in_channels=[32, 32, 128, 128]),
)
