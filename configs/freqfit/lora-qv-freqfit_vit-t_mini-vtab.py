# FreqFit (complex filters) on top of the board's own LoRA row (r=8, alpha=8, q and v
# only), on the shipped frozen ViT-T/8 (mmwst/weights), one mini-VTAB task (VTAB_TASK).
# The paper's host LoRA adapts q, k, v, proj, fc1 and fc2 (lora-freqfit_vit-t_mini-vtab.py);
# this row puts FreqFit on the same host as the 'LoRA (r=8, q,v)' row, so FreqFit's gain
# over its host is read from the board. lr chosen on train800 -> val200 of three tasks
# (docs/mini_vtab.md).
_base_ = ['../_base_/mini_vtab_vit-t.py']
board_name = 'FreqFit + LoRA (r=8, q,v)'
lr = 1e-2
optim_wrapper = dict(optimizer=dict(lr=lr))
model = dict(
    backbone=dict(
        tuners=[
            dict(type='mmwst.LoRA', rank=8, alpha=8, targets=('q', 'v')),
            dict(type='mmwst.FreqFit', filter_type='complex'),
        ]
    )
)
