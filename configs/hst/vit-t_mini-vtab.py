# HST on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task (VTAB_TASK).
# Shared recipe in ../_base_/mini_vtab_vit-t.py. HST's own choices: the released side
# network (widths 32/48/64/72, heads 2/4/8/12, two ViT layers per stage on the 8-layer
# host), meta tokens and trainable ViT LayerNorms, and its head: the mean of the stage-4
# tokens -> BatchNorm1d (no affine) -> Linear. lr chosen on train800 -> val200 of three
# tasks (docs/mini_vtab.md).
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'HST'
lr = 1e-3
optim_wrapper = dict(optimizer=dict(lr=lr))
side_channels = (32, 48, 64, 72)
model = dict(
    backbone=dict(
        tuners=[
            dict(
                type='mmwst.HST',
                channels=side_channels,
                num_heads=(2, 4, 8, 12),
                mlp_ratio=4.0,
                drop_path_rate=0.0,
                output='cls',
            )
        ],
    ),
    head=dict(
        _delete_=True,
        type='mmwst.HSTClsHead',
        num_classes={{_base_.num_classes}},
        in_channels=side_channels[-1],
        loss=dict(type='CrossEntropyLoss'),
    ),
)
