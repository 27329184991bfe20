# The shapes detection demo (../shapes_cascade_mask_rcnn.py) with the dense backbone
# beside the ViT (host_grad=False): the frozen ViT runs without autograd, only the WST
# branch, the side network, the FPN and the heads train. One of the four variants of the
# trade-off table in docs/dense_modes.md; everything else is the demo's.
_base_ = ['../shapes_cascade_mask_rcnn.py']

model = dict(backbone=dict(host_grad=False))
