# The shapes detector's earlier budget, at which every detector figure of
# docs/dense_modes.md before "The demo detector" was measured: the demo detector
# (../shapes_cascade_mask_rcnn.py, the mixed pyramid, lr 1e-3) trained on the first 200
# generated images for 10 epochs (250 iterations), its RoIs read by mmcv's RoIAlign kernel
# (mmdet's SingleRoIExtractor). The variants of the trade-off table and of the study start
# from here.
_base_ = ['./no-copy-paste_shapes_cascade_mask_rcnn.py']

max_epochs = 10
model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(type='SingleRoIExtractor'),
        mask_roi_extractor=dict(type='SingleRoIExtractor'),
    )
)
train_dataloader = dict(dataset=dict(indices=200))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=0.0),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
