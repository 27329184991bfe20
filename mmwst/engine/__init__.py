from .checkpoint import (
    SafeCheckpointHook,
    UnsafeCheckpointError,
    from_weights_only,
    load_local_checkpoint,
    register_safe_loader,
    to_weights_only,
)
from .launch import prepare_config

register_safe_loader()

__all__ = [
    'SafeCheckpointHook',
    'UnsafeCheckpointError',
    'from_weights_only',
    'load_local_checkpoint',
    'prepare_config',
    'register_safe_loader',
    'to_weights_only',
]
