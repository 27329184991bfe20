# A frozen Swin-B (ImageNet-21k, window 7) with tuners, global pooling and a linear head.
# Put an mmpretrain Swin-B checkpoint at `pretrained`; it is read from disk.
pretrained = 'checkpoints/swin-base_in21k.pth'
num_classes = 100
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmwst.TunedSwinTransformer',
        arch='base',
        img_size=224,
        window_size=7,
        drop_path_rate=0.1,
        pretrained=pretrained,
        tuners=[],
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02),
    ),
)
