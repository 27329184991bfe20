"""finish_distributed frees the runner's reference cycles before it destroys the group."""

import subprocess
import sys
import textwrap

from tests.helpers import REPO

# A stand-in for an mmengine runner: a DDP-wrapped model inside a reference cycle (as
# the runner's hooks and loops point back at it), so dropping the name frees nothing.
SCRIPT = textwrap.dedent(
    """
    import weakref

    import torch
    import torch.distributed as dist

    from mmwst.engine import finish_distributed

    # a store on a port the system picks, held from binding to the end: no other
    # program can take it in between
    store = dist.TCPStore('127.0.0.1', 0, 1, is_master=True)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)


    class Runner:
        def __init__(self):
            self.model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
            self.hooks = [self]  # the cycle


    runner = Runner()
    runner.model(torch.randn(3, 4)).sum().backward()  # the reducer has run
    model = weakref.ref(runner.model)
    seen = []
    destroy = dist.destroy_process_group


    def recording_destroy(*args, **kwargs):
        seen.append(model() is None)
        return destroy(*args, **kwargs)


    dist.destroy_process_group = recording_destroy
    del runner
    assert model() is not None, 'the cycle should keep the DDP model alive'
    finish_distributed()
    print('freed before destroy:', seen)
    assert seen == [True], seen
    assert not dist.is_initialized()
    """
)


def test_runner_cycle_freed_before_the_group_is_destroyed():
    proc = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert 'freed before destroy: [True]' in proc.stdout
