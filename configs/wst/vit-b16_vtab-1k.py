# WST (Zeng, Huang and Wang, AAAI 2025) on a frozen ViT-B/16, one VTAB-1k task.
# Settings were released for two tasks and follow VTAB_TASK automatically:
#   caltech101: lr 1e-3, drop_path 0.0, s = 10;  dtd: lr 8e-4, drop_path 0.3, s = 0.1.
# Other tasks start from the caltech101 values; tune lr, drop_path and s, e.g.
#   --cfg-options optim_wrapper.optimizer.lr=5e-4 model.backbone.drop_path_rate=0.1 \
#       model.backbone.tuners.0.scale=1.0
_base_ = ['../_base_/vtab1k_vit-b16.py']
from mmwst.datasets.vtab import released_settings

# The schedule base holds WST's optimizer: AdamW, weight decay 0.05 (none on biases and
# other 1-D parameters); the dataset base resizes to 224 (bicubic), normalises 0.5/0.5.
# The learning-rate curve is the released one (below).
# the released settings (released_vtab-1k.json beside this file) follow VTAB_TASK
recipe = released_settings(
    '{{ fileDirname }}/released_vtab-1k.json',
    '{{$VTAB_TASK:cifar}}',
    lr=1e-3,
    drop_path=0.0,
    scale=10.0,
)
lr = recipe['lr']
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(
    backbone=dict(
        drop_path_rate=recipe['drop_path'],
        # mean of the last block's patch tokens -> frozen final LayerNorm -> head
        out_type='avg_patch',
        tuners=[dict(type='mmwst.WST', rank=2, scale=recipe['scale'], wavelet='haar')],
    ),
)
# The released schedule (timm's cosine in the WST code): a 100-epoch cosine cycle down to
# 1e-8 with the 10 warm-up epochs (linear from 1e-7) inside it, then 10 epochs at that
# floor - 110 epochs, the rate set once per epoch (epoch e trains at the curve's value
# at e).
param_scheduler = [
    dict(
        type='mmwst.WarmupCosineLR',
        cycle=100,
        warmup=10,
        warmup_start=1e-7,
        eta_min=1e-8,
        by_epoch=True,
        end=110,
    )
]
train_cfg = dict(max_epochs=110)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
trainable_without_head = 83_160
