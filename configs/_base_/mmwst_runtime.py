# Runtime shared by every mmwst config: mmpretrain's defaults, mmwst loaded through
# custom_imports (so upstream tools work too), weights-only checkpoints, the divergence
# guard (a non-finite loss stops the run; no non-finite checkpoint is written) and the
# trainable-parameter report at the start of training; heads must predict as many
# classes as the data has (mmwst.CheckClassesHook).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmwst'], allow_failed_imports=False)
# checks the data and weight paths (mmwst.CheckPathsHook) under any entry point
runner_type = 'mmwst.CheckedRunner'
custom_hooks = [
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.DivergenceGuardHook'),
    dict(type='mmwst.CheckClassesHook'),
    dict(type='mmwst.ParamReportHook'),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2, save_last=True),
)
