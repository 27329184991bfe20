# What the ADE20K configs of patch-14 hosts (DINOv2-L/14, EVA-02-L/14) change in the
# UperNet recipe: crops of 518 x 518 (37 x 37 patches) instead of 512, mmseg's resizing
# kept; whole images padded to a multiple of the patch at test time; sliding-window
# inference over the same crops. Only variables: each config places them in its model,
# pipeline and loader.

patch14_crop = (518, 518)
patch14_data_preprocessor = dict(size=patch14_crop, test_cfg=dict(size_divisor=14))
patch14_test_cfg = dict(mode='slide', crop_size=patch14_crop, stride=(341, 341))
patch14_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=patch14_crop, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
