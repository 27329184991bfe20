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


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pytest_configure(config):
    """In a parallel run (pytest-xdist, ``-n N``), each of the N test processes takes its
    share of the cores, at least one, for torch in the process and for the programs it
    starts (``OMP_NUM_THREADS``); otherwise N processes would each use them all. Tests
    whose figures depend on the thread count fix it themselves
    (``tests.helpers.torch_threads``, ``tests.helpers.tool_env``)."""
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    if not workers:
        return
    threads = max(1, _cores() // int(workers))
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(threads)
    import torch

    torch.set_num_threads(threads)


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


# ---- data and weights that many test files read ------------------------------------------
# Built once per test process (each parallel worker builds its own copy: a few seconds
# at most) under pytest's temporary folder. Tests read them and never write into them.


@pytest.fixture(scope='session')
def digits_root(tmp_path_factory) -> str:
    """The scikit-learn digits task in VTAB-1k layout (32 px), written once per session."""
    from mmwst.datasets.generation.digits import write_digits_vtab

    return write_digits_vtab(str(tmp_path_factory.mktemp('vtab')), size=32)


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> str:
    """The procedural shapes task (detection and segmentation labels): 16 training and 4
    validation images of 128 px, seed 0, written once per session. The dense demos'
    short runs read it (``SHAPES_ROOT``)."""
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    root = str(tmp_path_factory.mktemp('shapes'))
    write_shapes_dataset(root, num_train=16, num_val=4, image_size=128, seed=0)
    return root


@pytest.fixture(scope='session')
def random_base(tmp_path_factory) -> dict:
    """A random tiny ViT, the digits demo's backbone (seed 0), saved the way a pretrained
    mmpretrain checkpoint is (``{'state_dict': {'backbone.<name>': tensor}}``): the frozen base of
    the runs that tune it. ``path`` is the file, ``state`` what it holds (not to be
    changed in place)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    import mmwst  # noqa: F401  (registers the models)
    from tests.helpers import DEMO_CONFIG

    init_default_scope('mmpretrain')
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(DEMO_CONFIG).model)
        model.init_weights()
    state = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    path = tmp_path_factory.mktemp('random_base') / 'random_base.pth'
    torch.save({'state_dict': state}, path)
    return dict(path=path, state=state)
