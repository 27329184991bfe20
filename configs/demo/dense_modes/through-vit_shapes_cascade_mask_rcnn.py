# The shapes detector on the full dense backbone with the side network's pyramid: WST's
# branch and HST's side network through the ViT (host_grad=True), the side network's four
# stages (widths 32, 48, 64, 96) feeding the FPN, at the earlier budget (200 images, 10
# epochs). The reference row of the trade-off table in docs/dense_modes.md.
_base_ = ['./earlier-budget_shapes_cascade_mask_rcnn.py']

side_channels = [32, 48, 64, 96]  # HST side-network widths = the four map widths
model = dict(backbone=dict(pyramid='side'), neck=dict(in_channels=side_channels))
