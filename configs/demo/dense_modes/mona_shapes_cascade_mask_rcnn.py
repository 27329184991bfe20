# The demo's detector (../shapes_cascade_mask_rcnn.py: its recipe and budget) with Mona's
# shapes backbone instead of WST + HST: Mona (r = 64) in every block of the shipped frozen
# ViT-T/8 and a simple feature pyramid of its last map (../../mona/_shapes_vit.py). Mona's
# own shapes config (configs/mona/vit-t_shapes_cascade_mask_rcnn.py) keeps the recipe
# before copy-paste, which its row of the shapes table was measured with; this one gives
# the figures of docs/dense_modes.md, "The ViT's last map as the fine levels".
_base_ = ['../shapes_cascade_mask_rcnn.py', '../../mona/_shapes_vit.py']

model = dict(backbone={{_base_.mona_backbone}}, neck={{_base_.mona_detector_neck}})
