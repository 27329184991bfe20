# The VTAB-1k recipe: AdamW, 100 epochs cosine after 10 linear warm-up epochs, total
# batch size 32. Scaling rule: lr grows linearly with the total batch size
# (enable with --cfg-options auto_scale_lr.enable=True when the batch differs).
# Only trainable parameters enter the optimizer; no weight decay on 1-D parameters.
lr = 1e-3
warmup_epochs = 10
max_epochs = 100
optim_wrapper = dict(
    constructor='mmwst.TunerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0, norm_decay_mult=0.0, bias_decay_mult=0.0),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=warmup_epochs,
        end=warmup_epochs + max_epochs,
        eta_min=1e-8,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=warmup_epochs + max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
