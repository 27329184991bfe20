# The side network runs (meta tokens, trained ViT norms), WST's pyramid feeds the FPN.
_base_ = ['./through-vit.py']
custom_imports = dict(imports=['side_pyramid_study'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='mmwst.MixedPyramidDenseViT', mix=('wst', 'wst', 'wst', 'wst')),
    neck=dict(in_channels=[32, 32, 128, 128]),
)
