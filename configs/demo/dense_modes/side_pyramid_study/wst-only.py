# The study's reference: the detector on WST's pyramid (the demo's detector when the study
# ran) at the learning rate it had then (3e-4).
_base_ = ['../wst-only_shapes_cascade_mask_rcnn.py']
optim_wrapper = dict(optimizer=dict(lr=3e-4))
