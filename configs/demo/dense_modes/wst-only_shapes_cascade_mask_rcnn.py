# The shapes detection demo with the WST branch alone (hst=None): the demo's own detector
# (../shapes_cascade_mask_rcnn.py), named here for the trade-off table in
# docs/dense_modes.md. The four maps come from WST's pyramid of the branch state and the
# last patch map, widths (D/4, D/4, D, D) = (32, 32, 128, 128) for the shipped ViT-T/8.
_base_ = ['../shapes_cascade_mask_rcnn.py']
