# HST alone on ADE20K: the dense backbone with the WST branch switched off (ablation of
# configs/wst_ade20k.py; same segmentor, recipe and data). The side network's four maps
# keep their widths 64/128/256/384.
_base_ = ['../_base_/dense/upernet_ade20k-160k.py']

model = dict(backbone=dict(wst=None))
