"""Fixtures of the CUDA subset (the ``device`` fixture and the skipping are in
tests/conftest.py)."""

import pytest
import torch


@pytest.fixture
def no_tf32():
    """Full fp32 matmuls and convolutions on the GPU (TF32 off) for this test, so that
    the device's fp32 results can be held to CPU fp32 tolerances; restored afterwards."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


@pytest.fixture
def runner_device(device, monkeypatch):
    """Make mmengine's Runner put the model (and resumed optimizer state) on ``device``.

    The Runner moves the model to ``mmengine.device.get_device()``: CUDA whenever there is
    one. With ``MMWST_TEST_DEVICE=cpu`` on a GPU machine it would still take the GPU;
    this pins it to the device under test (on the GPU it changes nothing)."""
    import mmengine.runner.runner as runner_module

    monkeypatch.setattr(runner_module, 'get_device', lambda: device)
    return device
