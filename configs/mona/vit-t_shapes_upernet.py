# The shapes demo's segmentor (../demo/shapes_upernet.py, its recipe) with Mona (r = 64) in
# every block of the shipped frozen ViT-T/8 instead of the dense WST + HST backbone (so
# through the ViT: Mona sits inside its blocks): the ViT's last map (stride 8) through a
# simple feature pyramid (strides 4 / 8 / 16 / 32, widths 64 / 128 / 128 / 128; both in
# _shapes_vit.py, shared with the detector) into UperNet. Mona's row of the shapes table in
# docs/dense_modes.md.
_base_ = ['../demo/shapes_upernet.py', './_shapes_vit.py']

model = dict(
    backbone={{_base_.mona_backbone}},
    neck={{_base_.mona_pyramid}},
    decode_head=dict(in_channels={{_base_.mona_pyramid_channels}}),
    auxiliary_head=dict(in_channels={{_base_.mona_width}}),  # the stride-16 map
)
