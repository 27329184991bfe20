# The shapes segmentation demo on the full dense backbone: WST's branch and HST's side
# network through the ViT - the demo's own segmentor (../shapes_upernet.py), named here
# for the trade-off table in docs/dense_modes.md.
_base_ = ['../shapes_upernet.py']
