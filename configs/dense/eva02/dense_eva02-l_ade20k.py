# WST + HST on ADE20K (UperNet) with a frozen EVA-02-L/14: the same dense backbone,
# segmentor, 160k recipe and data as configs/wst_ade20k.py. The host and the file it
# reads: configs/dense/eva02/dense_eva02-l_coco.py.
#
# Crops of 518 x 518 (37 x 37 patches) instead of 512, whole images padded to a multiple
# of the patch (14), sliding-window inference over the same crops (all from
# ../../_base_/dense/ade20k_patch14.py). The rotary embedding maps each input's grid onto
# the 16 x 16 reference grid of the 224-pixel pretraining.
_base_ = ['../../wst_ade20k.py', '../../_base_/dense/ade20k_patch14.py']

pretrained = 'checkpoints/eva02_large_patch14_224.pth'
crop_size = {{_base_.patch14_crop}}
model = dict(
    data_preprocessor={{_base_.patch14_data_preprocessor}},
    backbone=dict(
        type='mmwst.DenseTunedEVA02',
        arch='eva02-l',
        img_size=crop_size,
        patch_size=14,
        rope_ref_grid=(16, 16),
        drop_path_rate=0.3,
        pretrained=pretrained,
    ),
    test_cfg={{_base_.patch14_test_cfg}},
)
train_pipeline = {{_base_.patch14_train_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='ADE20K into data/ade/ (or ADE20K_ROOT=DIR), as configs/wst_ade20k.py says. '
        "The frozen EVA-02-L/14: timm's eva02_large_patch14_224.mim_m38m (or .mim_in22k) "
        'state dict at checkpoints/eva02_large_patch14_224.pth (or set '
        'model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
