# Mona (r=64, the release's bottleneck) on the shipped frozen ViT-T/8 (mmwst/weights), one
# mini-VTAB task (VTAB_TASK, data from tools/data/make_mini_vtab.py). Shared recipe in
# ../_base_/mini_vtab_vit-t.py; this method's learning rate was chosen on train800 ->
# val200 of three tasks (docs/mini_vtab.md), never on the test split: 90.8 / 91.5 / 92.0
# at 0.001 / 0.003 / 0.01; at 0.03 two of the three trainings diverged (NaN loss).
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'Mona (r=64)'
lr = 1e-2
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(backbone=dict(tuners=[dict(type='mmwst.Mona', bottleneck=64)]))
