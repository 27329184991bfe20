# What Mona's two shapes-demo configs share (vit-t_shapes_cascade_mask_rcnn.py,
# vit-t_shapes_upernet.py): Mona (r = 64) in every block of the shipped frozen ViT-T/8,
# its last map (stride 8, after the final LayerNorm) through a simple feature pyramid (a
# 2x transposed convolution, the map, 2x and 4x max-pooling: strides 4 / 8 / 16 / 32,
# widths D/2, D, D, D). Only variables: each config places them in its own model.
# no bases, but the key: mmengine reads a file with imports and no _base_ as a lazy-import
# config, which its non-lazy children could not inherit
_base_ = []

from mmwst.weights import shipped_vit_host

mona_vit = shipped_vit_host(img_size=128)
mona_width = mona_vit['arch']['embed_dims']
mona_backbone = dict(
    _delete_=True,
    type='mmwst.TunedVisionTransformer',
    **mona_vit,
    drop_path_rate=0.0,
    out_type='featmap',  # (B, D, H/8, W/8) after the final LayerNorm
    tuners=[dict(type='mmwst.Mona', bottleneck=64)],
)
mona_pyramid = dict(
    type='mmwst.SimpleFeaturePyramid',
    in_channels=mona_width,
    in_stride=8,
    scales=(2.0, 1.0, 0.5, 0.25),
)
mona_pyramid_channels = [mona_width // 2, mona_width, mona_width, mona_width]
# the detectors' neck: the simple feature pyramid, then mmdet's FPN of the demo's width
mona_detector_neck = [
    mona_pyramid,
    dict(type='FPN', in_channels=mona_pyramid_channels, out_channels=64, num_outs=5),
]
