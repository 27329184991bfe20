# One VTAB-1k task in the extracted list format: <data_root>/<task>/{train800val200,test}.txt
# with lines "<image path relative to the task folder> <label>".
# Preprocessing as the papers: resize to 224 (bicubic), no augmentation, mean=std=0.5.
data_root = 'data/vtab-1k'
task = 'cifar'
data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type='CustomDataset',
        data_root=f'{data_root}/{task}',
        ann_file='train800val200.txt',
        pipeline=pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type='CustomDataset',
        data_root=f'{data_root}/{task}',
        ann_file='test.txt',
        pipeline=pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
