# The side network's stride-4 and stride-8 maps multiplied by 0 (docs/dense_modes.md).
_base_ = ['./through-vit.py']
custom_imports = dict(imports=['side_pyramid_study'], allow_failed_imports=False)
model = dict(backbone=dict(type='mmwst.ScaledMapsDenseViT', map_scales=(0.0, 0.0, 1.0, 1.0)))
