# The shapes segmentation demo (../shapes_upernet.py) with the dense backbone beside the
# ViT (host_grad=False): the frozen ViT runs without autograd, only the WST branch, the
# side network and the heads train. One of the four variants of the trade-off table in
# docs/dense_modes.md; everything else is the demo's.
_base_ = ['../shapes_upernet.py']

model = dict(backbone=dict(host_grad=False))
