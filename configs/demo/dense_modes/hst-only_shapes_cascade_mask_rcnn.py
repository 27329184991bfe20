# The shapes detection demo (../shapes_cascade_mask_rcnn.py) with the side network alone
# (wst=None), through the ViT: meta tokens, the ViT's LayerNorms and the side network
# train. One of the four variants of the trade-off table in docs/dense_modes.md.
_base_ = ['../shapes_cascade_mask_rcnn.py']

model = dict(backbone=dict(wst=None))
