# No gradient clipping.
_base_ = ['./through-vit.py']
optim_wrapper = dict(clip_grad=None)
