"""Session fixtures shared by every test module."""

import pytest


@pytest.fixture(scope='session')
def digits_root(tmp_path_factory) -> str:
    """The scikit-learn digits task in VTAB-1k layout, written once per session."""
    from mmwst.datasets.digits import write_digits_vtab

    return write_digits_vtab(str(tmp_path_factory.mktemp('vtab')), size=32)
