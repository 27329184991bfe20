from .checkpoint import (
    DamagedCheckpointError,
    SafeCheckpointHook,
    UnsafeCheckpointError,
    from_weights_only,
    load_local_checkpoint,
    register_safe_loader,
    safe_loading,
    to_weights_only,
)
from .class_check import CheckClassesHook, check_classes
from .data_check import CheckPathsHook, check_required_paths
from .divergence import DivergedError, DivergenceGuardHook
from .hooks import ParamReportHook
from .launch import finish_distributed, prepare_config
from .optim import TunerOptimWrapperConstructor
from .pyramid_check import CheckPyramidHook, PyramidMismatchError, check_pyramid
from .resume import ResumeNoticeHook, choose_resume_checkpoint
from .runner import CheckedRunner
from .schedulers import WarmupCosineLR, WarmupCosineParamScheduler

__all__ = [
    'CheckClassesHook',
    'CheckedRunner',
    'CheckPathsHook',
    'CheckPyramidHook',
    'DamagedCheckpointError',
    'DivergedError',
    'DivergenceGuardHook',
    'PyramidMismatchError',
    'ResumeNoticeHook',
    'check_pyramid',
    'check_classes',
    'check_required_paths',
    'choose_resume_checkpoint',
    'ParamReportHook',
    'SafeCheckpointHook',
    'TunerOptimWrapperConstructor',
    'UnsafeCheckpointError',
    'WarmupCosineLR',
    'WarmupCosineParamScheduler',
    'finish_distributed',
    'from_weights_only',
    'load_local_checkpoint',
    'prepare_config',
    'register_safe_loader',
    'safe_loading',
    'to_weights_only',
]
