# The study's reference: the demo detector on WST's pyramid at the learning rate it had
# when the study ran (3e-4).
_base_ = ['../../shapes_cascade_mask_rcnn.py']
optim_wrapper = dict(optimizer=dict(lr=3e-4))
