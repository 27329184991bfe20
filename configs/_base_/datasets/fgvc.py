# One FGVC dataset in the VPT json format: <FGVC_ROOT>/<folder>/{train,val,test}.json.
# Choose it with environment variables, which every tool honours:
#   FGVC_DATASET=stanford_dogs FGVC_ROOT=/data/fgvc python tools/train.py CONFIG
# Datasets (folder): cub (CUB_200_2011), nabirds (nabirds), oxford_flowers (OxfordFlower),
# stanford_dogs (Stanford-dogs), stanford_cars (Stanford-cars). Training uses train + val,
# testing uses test. Preprocessing as VPT: random resized crop 224 + horizontal flip for
# training; resize the short side to 256 then centre crop 224 for testing; mean=std=0.5.
fgvc_dataset = '{{$FGVC_DATASET:cub}}'
fgvc_root = '{{$FGVC_ROOT:data/fgvc}}'
data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type='mmwst.FGVC',
        data_root=fgvc_root,
        folder='auto',
        dataset=fgvc_dataset,
        split='trainval',
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type='mmwst.FGVC',
        data_root=fgvc_root,
        folder='auto',
        dataset=fgvc_dataset,
        split='test',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
