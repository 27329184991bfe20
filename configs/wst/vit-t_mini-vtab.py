# WST on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task (VTAB_TASK).
# Shared recipe in ../_base_/mini_vtab_vit-t.py. WST's own choices: the fine branch at
# stride p/2 = 4 with rank-2 wavelet bottlenecks (Haar), feedback scale s = 1, and the
# mean of the last block's patch tokens through the frozen final norm as the feature. lr
# was chosen on train800 -> val200 of three tasks (docs/mini_vtab.md).
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'WST'
lr = 1e-2
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(
    backbone=dict(
        out_type='avg_patch',
        tuners=[dict(type='mmwst.WST', rank=2, scale=1.0, wavelet='haar')],
    )
)
