# Frozen ViT-B/16 on one FGVC dataset: model, data, the AdamW recipe and the runtime.
# The head's class count follows the dataset (FGVC_DATASET, see datasets/fgvc.py).
_base_ = [
    './models/vit-b16_tuned.py',
    './datasets/fgvc.py',
    './schedules/vtab_adamw.py',
    './mmwst_runtime.py',
]
from mmwst.datasets.fgvc import fgvc_num_classes

num_classes = fgvc_num_classes('{{$FGVC_DATASET:cub}}')
model = dict(head=dict(num_classes=num_classes))
