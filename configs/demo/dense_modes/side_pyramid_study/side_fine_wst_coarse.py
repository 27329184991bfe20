# The side network's maps at strides 4 and 8, WST's pyramid's at 16 and 32.
_base_ = ['./through-vit.py']
custom_imports = dict(imports=['side_pyramid_study'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='mmwst.MixedPyramidDenseViT', mix=('side', 'side', 'wst', 'wst')),
    neck=dict(in_channels=[32, 48, 128, 128]),
)
