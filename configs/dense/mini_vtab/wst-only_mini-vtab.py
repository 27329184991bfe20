# The dense backbone as a classifier on one mini-VTAB task (VTAB_TASK), to compare its
# modes on the accuracy side (docs/dense_modes.md): the shipped frozen ViT-T/8 with WST +
# HST (side widths 32/48/64/72), the mean of the stride-32 map -> a linear head.
# Through the ViT (host_grad=True): WST's feedback, meta tokens and the ViT's LayerNorms
# train. Everything else as through-vit_mini-vtab.py.
_base_ = ['./through-vit_mini-vtab.py']

board_name = 'dense, WST only'
model = dict(
    backbone=dict(hst=None),
    head=dict(in_channels={{_base_.embed_dims}}),  # the pooled ViT map
)
