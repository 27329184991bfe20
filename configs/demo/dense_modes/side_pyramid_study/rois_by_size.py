# Every RoI read from the FPN level of its size (finest_scale 14 instead of 56).
_base_ = ['./through-vit.py']
model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(finest_scale=14), mask_roi_extractor=dict(finest_scale=14)
    )
)
