# One VTAB-1k task in the extracted list format: <VTAB_ROOT>/<task>/ with
# train800val200.txt and test.txt ("<image path relative to the task folder> <label>").
# Choose the task and the root with environment variables, which every tool honours:
#   VTAB_TASK=dtd VTAB_ROOT=/data/vtab-1k python tools/train.py CONFIG
# (also mmpretrain's own tools/train.py). Default: cifar under data/vtab-1k.
# Preprocessing as the papers: resize to 224 (bicubic), no augmentation, mean=std=0.5.
vtab_task = '{{$VTAB_TASK:cifar}}'
vtab_root = '{{$VTAB_ROOT:data/vtab-1k}}'
data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type='mmwst.VTAB1k',
        data_root=vtab_root,
        task=vtab_task,
        split='train800val200',
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type='mmwst.VTAB1k',
        data_root=vtab_root,
        task=vtab_task,
        split='test',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
