# LoRA (r=8 on q and v) on ADE20K through the plain-ViT pyramid, the reference point every
# other tuner uses on dense tasks (so methods compare): the frozen ViT-B/16's last feature
# map (stride 16) -> mmwst.SimpleFeaturePyramid (ViTDet: widths D/4, D/2, D, D at strides
# 4/8/16/32, trained) -> UPerHead directly, the same UperNet, recipe and data as
# configs/wst_ade20k.py. The simple pyramid, not mmseg's MultiLevelNeck over blocks
# (2, 5, 8, 11), is used so that detection and segmentation see the same pyramid, built
# the same way, for every tuner.
# Another tuner: replace `tuners` (e.g. [dict(type='mmwst.AdaptFormer')]).
_base_ = ['../_base_/dense/upernet_ade20k-160k.py']

vit_width = 768
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmwst.TunedVisionTransformer',
        arch='b',
        img_size={{_base_.crop_size}},
        patch_size=16,
        drop_path_rate=0.1,
        pretrained={{_base_.pretrained}},
        out_type='featmap',  # (B, D, H/16, W/16) after the final LayerNorm
        tuners=[dict(type='mmwst.LoRA', rank=8, alpha=8, targets=('q', 'v'))],
    ),
    neck=dict(type='mmwst.SimpleFeaturePyramid', in_channels=vit_width),
    decode_head=dict(in_channels=[vit_width // 4, vit_width // 2, vit_width, vit_width]),
    auxiliary_head=dict(in_channels=vit_width),  # the stride-16 map
)
