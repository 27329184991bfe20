# Frozen ViT-B/16 on one VTAB-1k task: model, data, the AdamW recipe and the runtime.
# The head's class count follows the task (VTAB_TASK, see datasets/vtab1k.py).
_base_ = [
    './models/vit-b16_tuned.py',
    './datasets/vtab1k.py',
    './schedules/vtab_adamw.py',
    './mmwst_runtime.py',
]
from mmwst.datasets.vtab import vtab_num_classes

num_classes = vtab_num_classes('{{$VTAB_TASK:cifar}}')
model = dict(head=dict(num_classes=num_classes))
