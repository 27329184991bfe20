# What Mona's two Swin-B dense configs share (swin-b_coco.py, swin-b_ade20k.py): Mona
# (r = 64) in every block of a frozen Swin-B (ImageNet-21k weights at
# checkpoints/swin-base_in21k.pth), its four stages out (strides 4 / 8 / 16 / 32).
# Only variables: each config places them in its own model.

mona_swin_pretrained = 'checkpoints/swin-base_in21k.pth'
mona_swin_backbone = dict(
    _delete_=True,
    type='mmwst.TunedSwinTransformer',
    arch='base',
    img_size=224,
    window_size=7,
    drop_path_rate=0.2,
    out_indices=(0, 1, 2, 3),
    pad_small_map=True,  # maps smaller than a window (small inputs) are padded to it
    pretrained=mona_swin_pretrained,
    tuners=[dict(type='mmwst.Mona', bottleneck=64)],
)
