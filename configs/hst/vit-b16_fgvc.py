# HST on a frozen ViT-B/16 (AugReg IN-21k), one FGVC dataset (FGVC_DATASET, default cub).
_base_ = ['../_base_/fgvc_vit-b16.py']
pretrained = 'checkpoints/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz'
model = dict(
    backbone=dict(
        pretrained=pretrained,
        drop_path_rate=0.1,
        tuners=[
            dict(
                type='mmwst.HST',
                channels=(32, 48, 64, 72),
                num_heads=(2, 4, 8, 12),
                drop_path_rate=0.1,
                output='cls',
            )
        ],
    ),
    neck=None,
    head=dict(
        _delete_=True,
        type='mmwst.HSTClsHead',
        num_classes={{_base_.num_classes}},
        in_channels=72,
        loss=dict(type='CrossEntropyLoss'),
    ),
)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=5e-4))
