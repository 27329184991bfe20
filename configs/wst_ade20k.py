# WST + HST on ADE20K: UperNet with mmwst's dense backbone (docs/methods.md) - a frozen
# ViT-B/16, the WST fine wavelet branch and the HST-style side network, emitting four maps
# (widths 64/128/256/384, strides 4/8/16/32) to UPerHead; the FCN auxiliary head reads the
# stride-16 map. The recipe (160k iterations of 512x512 crops, total batch 16 with the
# linear lr rule lr = 1e-4 x total_batch / 16, AdamW) and the files it needs on disk are
# described in the base config.
#
#   python tools/train.py configs/wst_ade20k.py
#   tools/dist_train.sh configs/wst_ade20k.py 4                      # 4 GPUs x 4 images
_base_ = ['./_base_/dense/upernet_ade20k-160k.py']

model = dict(
    backbone=dict(
        wst=dict(rank=2, scale=1.0),
        hst=dict(channels=(64, 128, 256, 384), num_heads=(2, 4, 8, 12)),
    ),
    decode_head=dict(in_channels=[64, 128, 256, 384]),  # the side network's widths
    auxiliary_head=dict(in_channels=256),  # the stride-16 map
)
