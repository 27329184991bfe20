from .digits import write_digits_vtab

__all__ = ['write_digits_vtab']
