# The demo's detector (../shapes_cascade_mask_rcnn.py) with its training recipe before
# copy-paste: each image as generated, batches of 8 at lr 1e-3, 64 regions per image in
# each cascade stage drawn at random, the stages' losses weighed 1 / 0.5 / 0.25 (mmdet's
# default), the optimizer's update tensor by tensor, and the mixed pyramid the demo read
# then (WST's branch state at strides 4 and 8, widths D/4). The earlier figures of
# docs/dense_modes.md (the budget table, the side network's study and modes, Mona's
# shapes row) come from this recipe; the model is otherwise the demo's.
_base_ = ['../shapes_cascade_mask_rcnn.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        _delete_=True,
        type='CocoDataset',
        data_root={{_base_.data_root}},
        metainfo=dict(classes={{_base_.classes}}, palette={{_base_.palette}}),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True),
        indices=1000,
        pipeline=train_pipeline,
    ),
)
lr = 1e-3
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05)
)
auto_scale_lr = dict(base_batch_size=8)
model = dict(
    backbone=dict(pyramid='mixed'),
    neck=dict(in_channels=[32, 32, 64, 96]),  # D/4 = 32 twice, the side's last two stages
    roi_head=dict(stage_loss_weights=[1, 0.5, 0.25]),
    train_cfg=dict(
        rcnn=[
            dict(
                assigner=dict(
                    type='MaxIoUAssigner',
                    pos_iou_thr=iou,
                    neg_iou_thr=iou,
                    min_pos_iou=iou,
                    match_low_quality=False,
                    ignore_iof_thr=-1,
                ),
                sampler=dict(
                    type='RandomSampler',
                    num=64,
                    pos_fraction=0.25,
                    neg_pos_ub=-1,
                    add_gt_as_proposals=True,
                ),
                mask_size=28,
                pos_weight=-1,
                debug=False,
            )
            for iou in (0.5, 0.6, 0.7)
        ]
    ),
)
