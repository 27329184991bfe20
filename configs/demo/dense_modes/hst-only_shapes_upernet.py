# The shapes segmentation demo (../shapes_upernet.py) with the side network alone
# (wst=None), through the ViT: meta tokens, the ViT's LayerNorms and the side network
# train. One of the four variants of the trade-off table in docs/dense_modes.md.
_base_ = ['../shapes_upernet.py']

model = dict(backbone=dict(wst=None, host_grad=True))
