# WST + HST on COCO: Cascade Mask R-CNN with mmwst's dense backbone (docs/methods.md) - a
# frozen ViT-B/16, the WST fine wavelet branch and the HST-style side network that reads
# the ViT's per-layer tokens, meta tokens and the WST branch state. The FPN reads the
# mixed pyramid (pyramid='mixed'): WST's branch at strides 4 and 8 (widths D/4 = 192),
# the side network's last two stages at 16 and 32 (widths 256, 384). A detector on the
# side network's own stride-4/8 stages does not learn its RoI heads (the shapes study in
# docs/dense_modes.md); the side network's four stages remain pyramid='side'.
# The recipe (3x = 36 COCO epochs, multi-scale training, total batch 16 with the linear
# lr rule lr = 1e-4 x total_batch / 16, AdamW) and the files it needs on disk are
# described in the base config.
#
#   python tools/train.py configs/wst_coco.py                        # 1 process
#   tools/dist_train.sh configs/wst_coco.py 8                        # 8 GPUs x 2 images
_base_ = ['./_base_/dense/cascade-mask-rcnn_coco-ms-3x.py']

model = dict(
    backbone=dict(
        wst=dict(rank=2, scale=1.0),
        hst=dict(channels=(64, 128, 256, 384), num_heads=(2, 4, 8, 12)),
        pyramid='mixed',
    ),
    neck=dict(in_channels=[192, 192, 256, 384]),  # WST's branch (D/4) twice, the side's last two
)
