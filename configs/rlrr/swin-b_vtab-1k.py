# RLRR on a frozen Swin-B, one VTAB-1k task, in the layout of the authors' released Swin
# code (swin_variant='release', the default): every block's fused qkv (one input-side
# scale shared by q, k, v), attention projection, fc1 and fc2, the patch-merging
# reductions, SSF after both norms of every block and after the final norm; no SSF after
# the patch embedding. 358,144 trainable parameters without the head. The released
# per-task settings (lr, drop, weight decay, horizontal flip; README.md) follow
# VTAB_TASK as in the ViT-B/16 config. swin_variant='mmwst' gives mmwst's own layout
# (the ViT's carried over to Swin, 375,296).
# The recipe (released per-task settings, optimizer, schedule, pipeline, zero-initialised
# head) is the ViT-B/16 config's; only the host differs.
_base_ = ['./vit-b16_vtab-1k.py']
pretrained = 'checkpoints/swin-base_in21k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmwst.TunedSwinTransformer',
        arch='base',
        img_size=224,
        window_size=7,
        # the reference's "drop path" is RLRR's branch_drop_rate, as for the ViT
        drop_path_rate=0.0,
        pretrained=pretrained,
        tuners=[
            dict(
                type='mmwst.RLRR',
                branch_drop_rate={{_base_.recipe.drop_path}},
                swin_variant='release',
            )
        ],
    ),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(in_channels=1024),
)
# the count the released Swin layout gives (above), checked by
# tests/configs/test_baseline_configs.py
trainable_without_head = 358_144
