# The dense backbone as a classifier on one mini-VTAB task (VTAB_TASK), to compare its
# modes on the accuracy side (docs/dense_modes.md): the shipped frozen ViT-T/8 with WST +
# HST (side widths 32/48/64/72), the mean of the stride-32 map -> a linear head.
# Beside the ViT (host_grad=False): the ViT runs without autograd; only the branch and
# the side network train. Shared mini-VTAB recipe (../../_base_/mini_vtab_vit-t.py);
# lr 1e-3 as HST's.
_base_ = ['../../_base_/mini_vtab_vit-t.py']
from mmwst.weights import shipped_vit_host

board_name = 'dense, beside the ViT'
side_channels = (32, 48, 64, 72)
lr = 1e-3
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmwst.DenseTunedViT',
        **shipped_vit_host(),
        drop_path_rate=0.0,
        wst=dict(rank=2, scale=1.0),
        hst=dict(channels=side_channels, num_heads=(2, 4, 8, 12)),
        host_grad=False,
    ),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(in_channels=side_channels[-1]),
)
