# The whole detector at lr 1e-3 instead of 3e-4.
_base_ = ['./through-vit.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
