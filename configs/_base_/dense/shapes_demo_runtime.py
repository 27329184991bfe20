# What both shapes demos (configs/demo/shapes_*.py) add to the dense runtime: the
# missing-data message says how to generate the data set instead of where to download it.
_base_ = ['./runtime.py']

custom_hooks = [
    dict(
        type='mmwst.CheckPathsHook',
        help='The shapes data set is generated, not downloaded: write it with '
        'python tools/data/make_shapes.py --root data/shapes (python tools/demo_dense.py '
        'does it too), or set SHAPES_ROOT to where it is.',
    ),
    dict(type='mmwst.CheckPyramidHook'),
    dict(type='mmwst.SafeCheckpointHook'),
    dict(type='mmwst.DivergenceGuardHook'),
    dict(type='mmwst.CheckClassesHook'),
    dict(type='mmwst.ParamReportHook'),
]
