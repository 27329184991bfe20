# A frozen ViT-B/16 (ImageNet-21k) with tuners, and a linear head.
# Put the Google ViT-B_16.npz (or an AugReg / timm / MAE / mmpretrain file) at
# `pretrained`; it is read from disk, never downloaded.
pretrained = 'checkpoints/ViT-B_16.npz'
num_classes = 100
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmwst.TunedVisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='cls_token',
        pretrained=pretrained,
        tuners=[],
    ),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02),
    ),
)
