# RLRR on a frozen ViT-B/16, one FGVC dataset (FGVC_DATASET, default cub).
_base_ = ['../_base_/fgvc_vit-b16.py']
model = dict(
    backbone=dict(drop_path_rate=0.0, tuners=[dict(type='mmwst.RLRR', branch_drop_rate=0.1)]),
    head=dict(init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0)),
)
optim_wrapper = dict(optimizer=dict(lr=3e-3, weight_decay=5e-5))
