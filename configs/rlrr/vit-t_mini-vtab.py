# RLRR on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task (VTAB_TASK).
# Shared recipe in ../_base_/mini_vtab_vit-t.py. RLRR's own choices: residual low-rank
# rescaling of q/k/v, proj, fc1, fc2 with the SSF pairs, no residual-branch dropout on
# these short runs, and a zero-initialised linear head on the class token, as released;
# no weight decay on its shifts and SSF pairs. lr chosen on train800 -> val200 of three
# tasks (docs/mini_vtab.md).
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'RLRR'
lr = 3e-2
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(
        custom_keys={
            '.shift.': dict(decay_mult=0.0),
            '.gamma.': dict(decay_mult=0.0),
            '.beta.': dict(decay_mult=0.0),
        },
    ),
)
model = dict(
    backbone=dict(tuners=[dict(type='mmwst.RLRR', branch_drop_rate=0.0)]),
    head=dict(init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0)),
)
