# The shapes demo's detector (../demo/shapes_cascade_mask_rcnn.py, its budget and recipe)
# with Mona (r = 64) in every block of the shipped frozen ViT-T/8 instead of the dense
# WST + HST backbone: the ViT's last map (stride 8, after its final LayerNorm) through a
# simple feature pyramid (strides 4 / 8 / 16 / 32, widths 64 / 128 / 128 / 128; both in
# _shapes_vit.py, shared with the segmentor) into the FPN. Mona's row of the shapes table
# in docs/dense_modes.md.
_base_ = ['../demo/dense_modes/no-copy-paste_shapes_cascade_mask_rcnn.py', './_shapes_vit.py']

model = dict(backbone={{_base_.mona_backbone}}, neck={{_base_.mona_detector_neck}})
