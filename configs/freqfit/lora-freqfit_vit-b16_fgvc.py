# FreqFit (complex filters) on top of LoRA (r=8 on q, k, v, proj, fc1, fc2) on a frozen
# ViT-B/16, one FGVC dataset (FGVC_DATASET, default cub); the FGVC AdamW recipe.
_base_ = ['../_base_/fgvc_vit-b16.py']
model = dict(
    backbone=dict(
        tuners=[
            dict(type='mmwst.LoRA', rank=8, alpha=8, targets=('q', 'k', 'v', 'proj', 'fc1', 'fc2')),
            dict(type='mmwst.FreqFit', filter_type='complex'),
        ]
    )
)
