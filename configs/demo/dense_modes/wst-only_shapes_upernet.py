# The shapes segmentation demo (../shapes_upernet.py) with the WST branch alone
# (hst=None), through the ViT: the four maps come from WST's pyramid of the branch state
# and the last patch map, widths (D/4, D/4, D, D) = (32, 32, 128, 128) for the shipped
# ViT-T/8. One of the four variants of the trade-off table in docs/dense_modes.md.
_base_ = ['../shapes_upernet.py']
from mmwst.weights import shipped_vit_host

embed_dims = shipped_vit_host()['arch']['embed_dims']
pyramid_channels = [embed_dims // 4] * 2 + [embed_dims] * 2
model = dict(
    backbone=dict(hst=None, host_grad=True),
    decode_head=dict(in_channels=pyramid_channels),
    auxiliary_head=dict(in_channels=pyramid_channels[2]),
)
