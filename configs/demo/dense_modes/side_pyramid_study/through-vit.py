# The study's detector (docs/dense_modes.md, "Why the side network's pyramid does not
# detect"): the shapes detector on WST + HST through the ViT, at the learning rate the
# demo's detector had when the study ran (3e-4); every experiment of the study changes
# one thing of this config.
_base_ = ['../through-vit_shapes_cascade_mask_rcnn.py']
optim_wrapper = dict(optimizer=dict(lr=3e-4))
