# FreqFit with VPT-deep (10 prompts per layer) on a frozen ViT-B/16, as released: the 1-D
# filter runs along [prompts; patches] (every token after the class token, 206 tokens,
# 104 bins x 768, complex) before each block and right after the last one, prompts
# included; FreqFit is listed after VPT so that it sees the prompts VPT inserts. The rest
# of the recipe (SGD, 100 epochs) is lora-freqfit_vit-b16_vtab-1k.py's.
_base_ = ['./lora-freqfit_vit-b16_vtab-1k.py']
num_prompts = 10
model = dict(
    backbone=dict(
        tuners=[
            dict(type='mmwst.VPT', num_prompts=num_prompts, deep=True),
            dict(type='mmwst.FreqFit', filter_type='complex', mode='1d', extra_tokens=num_prompts),
        ]
    )
)
# the trainable parameters without the head as the paper and docs/methods.md state
# them, checked against the built model by tests/configs/test_baseline_configs.py
# (VPT-deep + FreqFit (1-D))
trainable_without_head = 92_160 + 2_076_672
