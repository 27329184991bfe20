# LoRA (r=8, q,v) on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task
# (VTAB_TASK, data from tools/data/make_mini_vtab.py). Shared recipe in
# ../_base_/mini_vtab_vit-t.py; this method's learning rate was chosen on train800 ->
# val200 of three tasks (docs/mini_vtab.md), never on the test split.
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'LoRA (r=8, q,v)'
lr = 1e-2
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(backbone=dict(tuners=[dict(type='mmwst.LoRA', rank=8, alpha=8, targets=('q', 'v'))]))
