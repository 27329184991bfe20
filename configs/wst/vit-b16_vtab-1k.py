# WST (Zeng, Huang and Wang, AAAI 2025) on a frozen ViT-B/16, one VTAB-1k task.
# Defaults are the released caltech101 setting: lr 1e-3, drop_path 0.0, s = 10.
# dtd was released with lr 8e-4, drop_path 0.3, s = 0.1; other tasks tune all three, e.g.
#   --cfg-options optim_wrapper.optimizer.lr=8e-4 model.backbone.drop_path_rate=0.3 \
#       model.backbone.tuners.0.scale=0.1
_base_ = [
    '../_base_/models/vit-b16_tuned.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/vtab_adamw.py',
    '../_base_/mmwst_runtime.py',
]
# The schedule base already holds the WST recipe: AdamW, weight decay 0.05 (none on
# biases and other 1-D parameters), 10 linear warm-up epochs from 1e-7 then 100 cosine
# epochs down to 1e-8; the dataset base resizes to 224 (bicubic), normalises 0.5/0.5.
lr = 1e-3
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(
    backbone=dict(
        drop_path_rate=0.0,
        # mean of the last block's patch tokens -> frozen final LayerNorm -> head
        out_type='avg_patch',
        tuners=[dict(type='mmwst.WST', rank=2, scale=10.0, wavelet='haar')],
    ),
)
