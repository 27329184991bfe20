"""Records, in every process of a distributed run, what is still alive when the process
group is destroyed.

Imported through a config's ``custom_imports`` (before the runner is built), it wraps
``DistributedDataParallel.__init__`` to keep a weak reference to every DDP model the run
creates, and ``torch.distributed.destroy_process_group`` to write, when it is called, a
JSON record to ``$TEARDOWN_RECORDS/rank<RANK>.json``:

* ``ddp_made``: how many DDP models the process created;
* ``ddp_alive``: how many of them were not yet freed. A weak reference answers until the
  object is really freed, so a model that is unreachable but waits, inside a reference
  cycle, for the cyclic garbage collector still counts as alive;
* ``finalizing``: whether the interpreter was already shutting down.

No record means that nothing destroyed the group while the program ran.
"""

import json
import os
import sys
import weakref

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

_made: list[weakref.ref] = []
_init = DistributedDataParallel.__init__
_destroy = dist.destroy_process_group


def _recording_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    _made.append(weakref.ref(self))


def _recording_destroy(*args, **kwargs):
    record = dict(
        ddp_made=len(_made),
        ddp_alive=sum(ref() is not None for ref in _made),
        finalizing=sys.is_finalizing(),
    )
    path = os.path.join(os.environ['TEARDOWN_RECORDS'], f'rank{os.environ["RANK"]}.json')
    with open(path, 'w') as f:
        json.dump(record, f)
    return _destroy(*args, **kwargs)


DistributedDataParallel.__init__ = _recording_init
dist.destroy_process_group = _recording_destroy
