# Reference row: the linear probe on a RANDOMLY initialised ViT-T/8 of the same
# architecture as the shipped one (no pretrained weights). Compared with
# vit-t_mini-vtab.py, it shows what pretraining on generated fractals adds.
# The frozen weights are random, so checkpoints keep them (save_frozen=True).
_base_ = ['./vit-t_mini-vtab.py']
board_name = 'linear probe (SGD head), random ViT'
model = dict(backbone=dict(pretrained=None, save_frozen=True))
