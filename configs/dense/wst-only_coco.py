# WST alone on COCO: the dense backbone with the side network switched off (ablation of
# configs/wst_coco.py; same detector, recipe and data). The pyramid is then the WST one:
# the fine branch state at stride 8 and its 2x upsampling at stride 4 (width D/4), the
# ViT's map at stride 16 and its pooling at stride 32 (width D), D = 768 for ViT-B.
_base_ = ['../_base_/dense/cascade-mask-rcnn_coco-ms-3x.py']

vit_width = 768
model = dict(
    backbone=dict(hst=None),
    neck=dict(in_channels=[vit_width // 4, vit_width // 4, vit_width, vit_width]),
)
