# The shapes demo's detector (../demo/shapes_cascade_mask_rcnn.py, its budget and recipe)
# with Mona (r = 64) in every block of the shipped frozen ViT-T/8 instead of the dense
# WST + HST backbone: the ViT's last map (stride 8, after its final LayerNorm) through a
# simple feature pyramid (a 2x transposed convolution, the map, 2x and 4x max-pooling:
# strides 4 / 8 / 16 / 32, widths 64 / 128 / 128 / 128) into the FPN. Mona's row of the
# shapes table in docs/dense_modes.md.
_base_ = ['../demo/shapes_cascade_mask_rcnn.py']

from mmwst.weights import shipped_vit_host

vit = shipped_vit_host(img_size=128)
width = vit['arch']['embed_dims']
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmwst.TunedVisionTransformer',
        **vit,
        drop_path_rate=0.0,
        out_type='featmap',  # (B, D, H/8, W/8) after the final LayerNorm
        tuners=[dict(type='mmwst.Mona', bottleneck=64)],
    ),
    neck=[
        dict(
            type='mmwst.SimpleFeaturePyramid',
            in_channels=width,
            in_stride=8,
            scales=(2.0, 1.0, 0.5, 0.25),
        ),
        dict(
            type='FPN',
            in_channels=[width // 2, width, width, width],
            out_channels=64,
            num_outs=5,
        ),
    ],
)
