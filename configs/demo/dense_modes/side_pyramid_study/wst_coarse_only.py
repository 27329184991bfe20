# WST's pyramid's maps at strides 16 and 32, nothing (the side network's maps times 0)
# at 4 and 8: do the fine levels fail for what the side network puts there, or for
# lack of what WST's branch puts there?
_base_ = ['./through-vit.py']
custom_imports = dict(imports=['side_pyramid_study'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='mmwst.MixedPyramidDenseViT', mix=('zero', 'zero', 'wst', 'wst')),
    neck=dict(in_channels=[32, 48, 128, 128]),
)
