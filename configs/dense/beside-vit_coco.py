# WST + HST on COCO in the mode that never back-propagates through the frozen ViT
# (DenseTunedViT(host_grad=False)): the ViT runs without autograd and keeps no
# activations; only the WST branch and the side network train. WST gives no feedback into
# the ViT, the side network's key tokens are the class token's outputs (no meta tokens)
# and the ViT's LayerNorms stay frozen. Same detector, recipe and data as
# configs/wst_coco.py; pick this one when memory or time is short.
_base_ = ['../wst_coco.py']

model = dict(backbone=dict(host_grad=False))
