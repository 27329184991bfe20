# WST's pyramid's maps at strides 4 and 8 (the branch state), the side network's at 16 and 32.
_base_ = ['./through-vit.py']
custom_imports = dict(imports=['side_pyramid_study'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='mmwst.MixedPyramidDenseViT', mix=('wst', 'wst', 'side', 'side')),
    neck=dict(in_channels=[32, 32, 64, 96]),
)
