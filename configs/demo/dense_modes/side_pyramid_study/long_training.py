# The side network's pyramid at the demo's lr 1e-3 for 30 epochs instead of 10 (750
# iterations, the cosine decay stretched to match): does it learn given three times the
# budget, or not at all?
_base_ = ['./lr_1e-3.py']
max_epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=0.0),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
