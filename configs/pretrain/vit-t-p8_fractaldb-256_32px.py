# Formula-driven supervised pretraining of mmwst's small frozen host, ViT-T/8:
# 8 blocks, width 128, 2 heads, MLP 512, patch 8, 32x32 images (a 4x4 patch grid),
# trained to tell apart 256 fractal categories (mmwst.FractalDB: iterated function
# systems, 500 rendered instances each, generated from the seed; no natural image).
#
# Run it, evaluate it and export the frozen backbone with one command:
#   python tools/pretrain_backbone.py configs/pretrain/vit-t-p8_fractaldb-256_32px.py
# Total batch 128 (1 process x 128). Learning-rate rule: lr = 1e-3 x total_batch / 128.
_base_ = ['./vit-t-p8_base.py']

dataset_type = 'mmwst.FractalDB'
num_classes = 256
generator = dict(num_classes=num_classes, image_size=32, seed=0, cache_dir='data/pretrain')
train_dataloader = dict(
    dataset=dict(type=dataset_type, num_per_class=500, split='train', **generator)
)
val_dataloader = dict(dataset=dict(type=dataset_type, num_per_class=20, split='val', **generator))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=num_classes))
