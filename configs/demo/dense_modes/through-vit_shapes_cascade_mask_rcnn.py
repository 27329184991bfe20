# The shapes detection demo (../shapes_cascade_mask_rcnn.py) on the full dense backbone:
# WST's branch and HST's side network through the ViT (host_grad=True), the side
# network's four stages (widths 32, 48, 64, 96) feeding the FPN. The reference row of the
# trade-off table in docs/dense_modes.md; everything else is the demo's.
_base_ = ['../shapes_cascade_mask_rcnn.py']

side_channels = [32, 48, 64, 96]  # HST side-network widths = the four map widths
model = dict(
    backbone=dict(hst=dict(_delete_=True, channels=side_channels, num_heads=(1, 2, 2, 4))),
    neck=dict(in_channels=side_channels),
)
