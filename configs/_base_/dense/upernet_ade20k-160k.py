# UperNet on ADE20K (mmseg), 160k iterations of 512x512 crops, with a frozen ViT-B/16 and
# the dense WST + HST backbone (mmwst.DenseTunedViT: four maps at strides 4/8/16/32).
# Everything except the backbone, the optimizer, the schedule and the paths is mmseg's own
# UperNet ADE20K 160k config, inherited, not copied: RandomResize (2048, 512) x 0.5-2.0,
# RandomCrop 512 (cat_max_ratio 0.75), flip, photometric distortion; UPerHead on the four
# maps, an FCN auxiliary head (loss weight 0.4) on the stride-16 map; mIoU every 16k
# iterations. Test: short side 512, sliding 512x512 windows (stride 341), as mmseg's ViT
# configs; test images are padded to a multiple of 32 (a multiple of the patch size 16).
#
# Total batch 16 (4 GPUs x 4 images, as mmseg's UperNet recipe). Linear scaling rule:
# lr = 1e-4 x total_batch / 16; auto_scale_lr applies it when the total batch differs.
# AdamW (weight decay 0.05, none on 1-D parameters), 1,500 linear warm-up iterations, then
# poly decay (power 1) to 0 at 160k.
#
# On disk (checked at start by mmwst.CheckPathsHook, which names what is missing):
#   data/ade/ADEChallengeData2016/ (or ADE20K_ROOT=DIR) with images/{training,validation}
#   and annotations/{training,validation}; checkpoints/ViT-B_16.npz.
_base_ = [
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    './runtime.py',
]

data_root = '{{$ADE20K_ROOT:data/ade/ADEChallengeData2016}}'
pretrained = 'checkpoints/ViT-B_16.npz'
crop_size = (512, 512)
side_channels = (64, 128, 256, 384)  # HST side-network widths = the four map widths

model = dict(
    pretrained=None,  # mmseg would hand a model-level path to the backbone
    data_preprocessor=dict(test_cfg=dict(size_divisor=32)),
    backbone=dict(
        _delete_=True,
        type='mmwst.DenseTunedViT',
        arch='b',
        img_size=crop_size,
        patch_size=16,
        drop_path_rate=0.1,
        pretrained=pretrained,
        wst=dict(rank=2, scale=1.0),
        hst=dict(channels=side_channels, num_heads=(2, 4, 8, 12)),
    ),
    decode_head=dict(in_channels=list(side_channels), in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=side_channels[2], in_index=2),  # the stride-16 map
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)),
)

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmwst.TunerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
auto_scale_lr = dict(enable=True, base_batch_size=16)

custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='ADE20K (SceneParsing, ADEChallengeData2016.zip from '
        'http://sceneparsing.csail.mit.edu) unpacked into data/ade/ (or set '
        'ADE20K_ROOT=DIR), giving images/{training,validation} and '
        "annotations/{training,validation}. The frozen ViT-B/16 is Google's "
        'ImageNet-21k ViT-B_16.npz, put at checkpoints/ViT-B_16.npz (or set '
        'model.backbone.pretrained).',
    ),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.ParamReportHook'),
]
