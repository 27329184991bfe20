# Every RoI of the shapes (20-60 px) read from the FPN's stride-16 and stride-32 levels
# (finest_scale 4 instead of 56), whose inputs are the side network's last two stages -
# the stages that serve the detector in the mixed pyramid.
_base_ = ['./through-vit.py']
model = dict(
    roi_head=dict(bbox_roi_extractor=dict(finest_scale=4), mask_roi_extractor=dict(finest_scale=4))
)
