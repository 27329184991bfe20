# What every dense (mmdet / mmseg) mmwst config adds to the upstream runtime: mmwst loaded
# through custom_imports (so mmdet's and mmseg's own tools work too), weights-only
# checkpoints, the trainable-parameter report, and a check that fails at once, naming the
# files, when the data or the frozen weights are not on disk (mmwst.CheckPathsHook; the
# configs set its `help`), and one that fails as early when the neck or the heads do not
# fit the widths and strides the backbone declares (mmwst.CheckPyramidHook).
custom_imports = dict(imports=['mmwst'], allow_failed_imports=False)
# checks the data and weight paths (mmwst.CheckPathsHook) under any entry point
runner_type = 'mmwst.CheckedRunner'
custom_hooks = [
    dict(type='mmwst.CheckPathsHook'),
    dict(type='mmwst.CheckPyramidHook'),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.DivergenceGuardHook'),
    dict(type='mmwst.CheckClassesHook'),
    dict(type='mmwst.ParamReportHook'),
]
