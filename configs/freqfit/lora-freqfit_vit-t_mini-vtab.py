# FreqFit (complex filters) on top of LoRA (r=8, alpha=8 on q, k, v, proj, fc1, fc2, the
# paper's host method) on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task
# (VTAB_TASK). Shared recipe in ../_base_/mini_vtab_vit-t.py (AdamW; the paper's SGD
# recipe is in lora-freqfit_vit-b16_vtab-1k.py); lr chosen on train800 -> val200 of three
# tasks (docs/mini_vtab.md).
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'FreqFit + LoRA (r=8, 6 linears)'
lr = 1e-2
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(
    backbone=dict(
        tuners=[
            dict(type='mmwst.LoRA', rank=8, alpha=8, targets=('q', 'k', 'v', 'proj', 'fc1', 'fc2')),
            dict(type='mmwst.FreqFit', filter_type='complex'),
        ]
    )
)
