# WST's pyramid (the demo's detector when the study ran) at lr 1e-3 instead of 3e-4.
_base_ = ['./wst-only.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
