# The shapes segmentation demo's own segmentor (../shapes_upernet.py): the dense backbone
# beside the ViT (host_grad=False), the frozen ViT without autograd, only the WST branch,
# the side network and the heads train. Named here for the trade-off table in
# docs/dense_modes.md.
_base_ = ['../shapes_upernet.py']

model = dict(backbone=dict(host_grad=False))
