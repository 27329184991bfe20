# The shapes detection demo with the side network alone (wst=None), through the ViT: meta
# tokens, the ViT's LayerNorms and the side network train. One of the variants of the
# trade-off table in docs/dense_modes.md; everything else is
# through-vit_shapes_cascade_mask_rcnn.py's.
_base_ = ['./through-vit_shapes_cascade_mask_rcnn.py']

model = dict(backbone=dict(wst=None))
