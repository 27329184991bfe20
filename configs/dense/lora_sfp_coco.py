# LoRA (r=8 on q and v) on COCO through the plain-ViT pyramid, the reference point every
# other tuner uses on dense tasks (so methods compare): the frozen ViT-B/16's last feature
# map (stride 16) -> mmwst.SimpleFeaturePyramid (ViTDet: widths D/4, D/2, D, D at strides
# 4/8/16/32, trained) -> mmdet's FPN -> the same Cascade Mask R-CNN, recipe and data as
# configs/wst_coco.py. mmengine builds a list of neck configs as nn.Sequential.
# Another tuner: replace `tuners` (e.g. [dict(type='mmwst.AdaptFormer')]).
_base_ = ['../_base_/dense/cascade-mask-rcnn_coco-ms-3x.py']

vit_width = 768
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmwst.TunedVisionTransformer',
        arch='b',
        img_size=224,  # the checkpoint's grid; position embeddings follow each input
        patch_size=16,
        drop_path_rate=0.1,
        pretrained={{_base_.pretrained}},
        out_type='featmap',  # (B, D, H/16, W/16) after the final LayerNorm
        tuners=[dict(type='mmwst.LoRA', rank=8, alpha=8, targets=('q', 'v'))],
    ),
    neck=[
        dict(type='mmwst.SimpleFeaturePyramid', in_channels=vit_width),
        dict(
            type='FPN',
            in_channels=[vit_width // 4, vit_width // 2, vit_width, vit_width],
            out_channels=256,
            num_outs=5,
        ),
    ],
)
