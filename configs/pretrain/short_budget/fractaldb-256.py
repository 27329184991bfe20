# Candidate: 256 fractal categories x 300 images (76,800) for 2 epochs - the short budget
# on which the pretraining data was chosen (docs/pretrained.md); the recipe of
# ../vit-t-p8_base.py otherwise, its cosine decay ending with the 2 epochs.
_base_ = ['../vit-t-p8_fractaldb-256_32px.py']
train_dataloader = dict(dataset=dict(num_per_class=300))
max_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=500),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(max_epochs=max_epochs)
