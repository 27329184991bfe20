from .dependencies import DependencyError, check_dependencies

__all__ = ['DependencyError', 'check_dependencies']
