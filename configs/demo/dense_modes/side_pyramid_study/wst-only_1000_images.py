# WST's pyramid (the demo detector) on all 1,000 generated training images for 2 epochs:
# the same 250 iterations as 200 images for 10 epochs.
_base_ = ['./wst-only.py']
max_epochs = 2
train_dataloader = dict(dataset=dict(indices=1000))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=0.0),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
