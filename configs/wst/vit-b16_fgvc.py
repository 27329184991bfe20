# WST on a frozen ViT-B/16, one FGVC dataset (FGVC_DATASET, default cub).
_base_ = ['../_base_/fgvc_vit-b16.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
model = dict(
    backbone=dict(
        drop_path_rate=0.1,
        out_type='avg_patch',  # mean of the patch tokens -> frozen final norm -> head
        tuners=[dict(type='mmwst.WST', rank=2, scale=1.0, wavelet='haar')],
    ),
)
