# The dense backbone as a classifier on one mini-VTAB task (VTAB_TASK), to compare its
# modes on the accuracy side (docs/dense_modes.md): the shipped frozen ViT-T/8 with WST +
# HST (side widths 32/48/64/72), the mean of the stride-32 map -> a linear head.
# Beside the ViT (host_grad=False): the ViT runs without autograd; only the branch and
# the side network train. Everything else as
# through-vit_mini-vtab.py.
_base_ = ['./through-vit_mini-vtab.py']

board_name = 'dense, beside the ViT'
model = dict(backbone=dict(host_grad=False))
