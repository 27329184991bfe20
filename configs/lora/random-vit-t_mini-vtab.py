# Reference row: LoRA on a RANDOMLY initialised ViT-T/8 of the same architecture as the
# shipped one (no pretrained weights); compared with vit-t_mini-vtab.py, it shows what
# pretraining adds to a tuner. Random frozen weights are kept in checkpoints.
_base_ = ['./vit-t_mini-vtab.py']
board_name = 'LoRA, random ViT'
model = dict(backbone=dict(pretrained=None, save_frozen=True))
