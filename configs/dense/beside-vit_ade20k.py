# WST + HST on ADE20K in the mode that never back-propagates through the frozen ViT
# (DenseTunedViT(host_grad=False)): the ViT runs without autograd and keeps no
# activations; only the WST branch and the side network train (no WST feedback, no meta
# tokens, frozen ViT LayerNorms). Same segmentor, recipe and data as configs/wst_ade20k.py.
_base_ = ['../wst_ade20k.py']

model = dict(backbone=dict(host_grad=False))
