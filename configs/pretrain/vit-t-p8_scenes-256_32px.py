# Formula-driven supervised pretraining of mmwst's small frozen host, ViT-T/8 (see
# vit-t-p8_base.py), on 256 procedural object categories composed into scenes
# (mmwst.ProceduralScenes: a random contour and a random grating texture per category,
# 500 rendered scenes each, generated from the seed; no natural image).
#
#   python tools/pretrain_backbone.py configs/pretrain/vit-t-p8_scenes-256_32px.py
# Total batch 128 (1 process x 128). Learning-rate rule: lr = 1e-3 x total_batch / 128.
_base_ = ['./vit-t-p8_base.py']

dataset_type = 'mmwst.ProceduralScenes'
num_classes = 256
generator = dict(num_classes=num_classes, image_size=32, seed=0, cache_dir='data/pretrain')
train_dataloader = dict(
    dataset=dict(type=dataset_type, num_per_class=500, split='train', **generator)
)
val_dataloader = dict(dataset=dict(type=dataset_type, num_per_class=20, split='val', **generator))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=num_classes))
