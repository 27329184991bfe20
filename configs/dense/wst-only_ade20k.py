# WST alone on ADE20K: the dense backbone with the side network switched off (ablation of
# configs/wst_ade20k.py; same segmentor, recipe and data). Pyramid widths (D/4, D/4, D, D)
# at strides 4/8/16/32, D = 768 for ViT-B; the auxiliary head reads the stride-16 map.
_base_ = ['../_base_/dense/upernet_ade20k-160k.py']

vit_width = 768
model = dict(
    backbone=dict(hst=None),
    decode_head=dict(in_channels=[vit_width // 4, vit_width // 4, vit_width, vit_width]),
    auxiliary_head=dict(in_channels=vit_width),
)
