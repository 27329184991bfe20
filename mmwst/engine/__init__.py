from .checkpoint import (
    SafeCheckpointHook,
    UnsafeCheckpointError,
    from_weights_only,
    load_local_checkpoint,
    register_safe_loader,
    to_weights_only,
)
from .class_check import CheckClassesHook, check_classes
from .data_check import CheckPathsHook, check_required_paths
from .divergence import DivergedError, DivergenceGuardHook
from .hooks import ParamReportHook
from .launch import prepare_config
from .optim import TunerOptimWrapperConstructor
from .pyramid_check import CheckPyramidHook, PyramidMismatchError, check_pyramid

register_safe_loader()

__all__ = [
    'CheckClassesHook',
    'CheckPathsHook',
    'CheckPyramidHook',
    'DivergedError',
    'DivergenceGuardHook',
    'PyramidMismatchError',
    'check_pyramid',
    'check_classes',
    'check_required_paths',
    'ParamReportHook',
    'SafeCheckpointHook',
    'TunerOptimWrapperConstructor',
    'UnsafeCheckpointError',
    'from_weights_only',
    'load_local_checkpoint',
    'prepare_config',
    'register_safe_loader',
    'to_weights_only',
]
