# The side network at 5x the heads' learning rate (1.5e-3 against 3e-4).
_base_ = ['./through-vit.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.side': dict(lr_mult=5.0)}))
