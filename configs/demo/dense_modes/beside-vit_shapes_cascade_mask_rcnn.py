# The shapes detection demo with WST + HST beside the ViT (host_grad=False): the frozen
# ViT runs without autograd, only the WST branch, the side network, the FPN and the heads
# train. One of the variants of the trade-off table in docs/dense_modes.md; everything
# else is through-vit_shapes_cascade_mask_rcnn.py's.
_base_ = ['./through-vit_shapes_cascade_mask_rcnn.py']

model = dict(backbone=dict(host_grad=False))
