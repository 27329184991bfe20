# The ViT bridges initialised 10x larger: the ViT's features dominate every stage.
_base_ = ['./through-vit.py']
custom_imports = dict(imports=['side_pyramid_study'], allow_failed_imports=False)
model = dict(backbone=dict(type='mmwst.BridgeGainDenseViT', bridge_gain=10.0))
