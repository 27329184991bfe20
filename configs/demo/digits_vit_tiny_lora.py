# Parameter-efficient tuning on the digits task: the tiny ViT trained by
# `python tools/demo_classification.py` (configs/demo/digits_vit_tiny.py) is frozen and LoRA + SSF
# adapt it. Checkpoints hold only LoRA, SSF and the head; the frozen backbone is read
# back from `pretrained` whenever a checkpoint is loaded.
_base_ = ['./digits_vit_tiny.py']

pretrained = 'work_dirs/demo_digits/epoch_30.pth'
model = dict(
    backbone=dict(
        pretrained=pretrained,
        tuners=[dict(type='mmwst.LoRA', rank=4, alpha=4), dict(type='mmwst.SSF')],
    )
)
max_epochs = 5
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
