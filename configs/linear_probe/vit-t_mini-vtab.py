# linear probe on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task
# (VTAB_TASK, data from tools/data/make_mini_vtab.py). Shared recipe in
# ../_base_/mini_vtab_vit-t.py; this method's learning rate was chosen on train800 ->
# val200 of three tasks (docs/mini_vtab.md), never on the test split.
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'linear probe (SGD head)'
lr = 1e-1
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(backbone=dict(tuners=[dict(type='mmwst.LinearProbe')]))
