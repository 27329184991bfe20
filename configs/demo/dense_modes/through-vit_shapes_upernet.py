# The shapes segmentation demo (../shapes_upernet.py) with the dense backbone through the
# ViT (host_grad=True): gradients flow back through the frozen blocks, WST's branch feeds
# the ViT and HST's meta tokens and the ViT's LayerNorms train. One of the four variants
# of the trade-off table in docs/dense_modes.md; everything else is the demo's.
_base_ = ['../shapes_upernet.py']

model = dict(backbone=dict(host_grad=True))
