"""Session fixtures shared by every test module, and the ``cuda`` marker's skipping.

Tests marked ``cuda`` (``tests/cuda/``) need a CUDA GPU and are skipped, with the reason,
where ``torch.cuda.is_available()`` is false. They take the device from the ``device``
fixture: ``'cuda'``, or the value of ``MMWST_TEST_DEVICE``:

* ``MMWST_TEST_DEVICE=cpu`` runs the ``cuda`` tests on the CPU instead of skipping them.
  This only checks the test code itself (that it builds, runs and asserts what it says);
  it says nothing about CUDA, since both sides of every CPU-vs-device comparison then run
  on the CPU.
* ``MMWST_TEST_DEVICE=cuda`` (or ``cuda:N``) insists on the GPU: without one, the run
  stops with an error instead of skipping, so that a GPU check cannot pass by skipping.
"""

import os

import pytest

DEVICE_ENV = 'MMWST_TEST_DEVICE'
NO_CUDA_REASON = (
    'needs a CUDA GPU: torch.cuda.is_available() is False '
    f'({DEVICE_ENV}=cpu runs these tests on the CPU, to check the test code only)'
)


def cuda_test_device() -> str | None:
    """The device of the ``cuda`` tests: ``MMWST_TEST_DEVICE`` if set, else ``'cuda'``
    when available, else None (skip). A CUDA device asked for without CUDA is an error."""
    import torch

    requested = os.environ.get(DEVICE_ENV, '').strip()
    if not requested:
        return 'cuda' if torch.cuda.is_available() else None
    if requested != 'cpu' and not (requested == 'cuda' or requested.startswith('cuda:')):
        raise pytest.UsageError(f'{DEVICE_ENV} must be cpu, cuda or cuda:N, got {requested!r}')
    if requested != 'cpu' and not torch.cuda.is_available():
        raise pytest.UsageError(
            f'{DEVICE_ENV}={requested} but torch.cuda.is_available() is False '
            f'(torch {torch.__version__}, built for CUDA {torch.version.cuda})'
        )
    return requested


def pytest_collection_modifyitems(config, items):
    cuda_items = [item for item in items if item.get_closest_marker('cuda') is not None]
    if not cuda_items or cuda_test_device() is not None:
        return
    skip = pytest.mark.skip(reason=NO_CUDA_REASON)
    for item in cuda_items:
        item.add_marker(skip)


@pytest.fixture(scope='session')
def device() -> str:
    """Where the ``cuda`` tests run: ``'cuda'`` or the ``MMWST_TEST_DEVICE`` override."""
    found = cuda_test_device()
    if found is None:
        pytest.skip(NO_CUDA_REASON)
    return found


@pytest.fixture(scope='session')
def digits_root(tmp_path_factory) -> str:
    """The scikit-learn digits task in VTAB-1k layout, written once per session."""
    from mmwst.datasets.generation.digits import write_digits_vtab

    return write_digits_vtab(str(tmp_path_factory.mktemp('vtab')), size=32)
