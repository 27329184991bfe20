from .hst_head import HSTClsHead

__all__ = ['HSTClsHead']
