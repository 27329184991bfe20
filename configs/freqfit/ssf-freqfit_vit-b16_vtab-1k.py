# FreqFit (complex 2-D filters on the patch grid) on top of SSF (scale and shift after
# every operation) on a frozen ViT-B/16, the released FreqFit + SSF combination. The rest
# of the recipe (SGD, 100 epochs) is lora-freqfit_vit-b16_vtab-1k.py's.
_base_ = ['./lora-freqfit_vit-b16_vtab-1k.py']
model = dict(
    backbone=dict(
        tuners=[dict(type='mmwst.SSF'), dict(type='mmwst.FreqFit', filter_type='complex')]
    )
)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
# (SSF + FreqFit (complex))
trainable_without_head = 205_824 + 2_256_384
