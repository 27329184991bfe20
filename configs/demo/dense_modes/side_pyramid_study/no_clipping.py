# No gradient clipping.
_base_ = ['../through-vit_shapes_cascade_mask_rcnn.py']
optim_wrapper = dict(clip_grad=None)
