# HST alone on COCO: the dense backbone with the WST branch switched off (ablation of
# configs/wst_coco.py; same detector, recipe and data). The side network's four maps
# keep their widths 64/128/256/384.
_base_ = ['../_base_/dense/cascade-mask-rcnn_coco-ms-3x.py']

model = dict(backbone=dict(wst=None))
