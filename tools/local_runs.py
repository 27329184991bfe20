"""Run trainings (or any command) as child processes whose fate is always known.

Used by tools/vtab_sweep.py (many small trainings, N at a time) and tools/demo_dense.py
(a detector and a segmentor side by side). The sweeping process is the direct parent of
every run, waits for each one by its own pid and knows exactly how it ended; it never
starts a thread. Each run gets:

- **its own log from its first byte to its last**: the child points its file
  descriptors 1 and 2 at the run's log before any of the run's code executes, and
  writes through unbuffered Python streams, so nothing a run prints can stay behind in
  a buffer, land in another run's log or in the sweeping process's output;
- **a certain fate**: an exit code, or the signal that killed it, taken from
  ``waitpid`` on the run's own pid. The parent appends a last line to the log saying how
  the run ended (``exit code 0``, ``killed by SIGSEGV``, ``exit code 3 without a
  traceback``...), and :meth:`Fate.describe` says the same in the summary;
- **the same start as a fresh interpreter, without its import time**: where a run has
  a Python ``target`` (tools/train.py's ``main``), it is forked from the parent after
  the parent imported the training stack once (:func:`preload`); a fresh interpreter
  spends 4-5 s of a small run's 20 importing torch, mmengine, mmpretrain and mmwst. The
  parent only imports: it runs no tensor operation (so no OpenMP thread pool exists to
  be copied half-alive into the children) and starts no thread. Runs with a ``cmd``
  (``tools/dist_train.sh`` for multi-GPU trainings) are spawned as new programs instead.

Why it is built this way (the earlier sweep lost runs and error messages): it started
each training through ``multiprocessing``'s fork server from a pool of threads. Two
defects of that arrangement, both reproduced outside mmwst:

1. ``multiprocessing.Process.start()`` first polls every other live child of the
   process (``multiprocessing.process._cleanup``). With the fork-server start method a
   poll *reads* the child's exit status from a pipe, which can be read only once. When
   one thread starts a run while another thread waits for a run that just ended, both
   read the same pipe: one gets the status, the other end-of-file, which
   ``multiprocessing`` reports as exit code 255. A healthy training was then listed as
   failed (300 trivial children from 2 threads: 3 reported 255).
2. ``print`` from two threads writes the text and its newline in two steps, so the
   sweep's lines ran together (``...seed0[sweep] broken / ...``) and blank lines
   appeared (8,000 lines from 2 threads: 446 blank lines, 2 joined ones).

Here the parent is single-threaded, reaps its own children with ``waitpid`` and writes
every line of its own in one call.
"""

from __future__ import annotations

import atexit
import ctypes
import faulthandler
import importlib
import io
import os
import os.path as osp
import select
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

#: What tools/train.py imports while it builds and trains a classifier.
TRAINING_STACK = (
    'torch',
    'mmengine.runner',
    'mmpretrain.datasets',
    'mmpretrain.engine',
    'mmpretrain.evaluation',
    'mmpretrain.models',
    'mmpretrain.visualization',
    'mmwst',
)

_TRACEBACK = 'Traceback (most recent call last):'


def say(text: str, stream=None) -> None:
    """Write ``text`` as whole lines in one call and flush (the parent's own output)."""
    stream = stream or sys.stdout
    stream.write(text if text.endswith('\n') else text + '\n')
    stream.flush()


def available_cores() -> int:
    """The cores this process may run on: its affinity mask where the system has one
    (a container or ``taskset`` may allow fewer than the machine has), else the count."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_run(jobs: int) -> int:
    """Threads for each of ``jobs`` runs side by side: the available cores shared out,
    at least one each."""
    return max(1, available_cores() // max(1, jobs))


def preload(modules: Iterable[str] = TRAINING_STACK) -> float:
    """Import ``modules`` in this process (so that forked runs start with them
    imported); return the seconds it took."""
    start = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    return time.perf_counter() - start


@dataclass
class Run:
    """One process to run.

    Args:
        label: How the run is named in the parent's lines and the summary.
        log: The file that receives the run's whole output (appended to).
        env: The run's complete environment.
        target: A function called with ``argv`` in a child forked from this process
            (e.g. ``train.main``); its return value is ignored, ``SystemExit`` gives the
            exit code and any other exception a traceback and exit code 1.
        argv: The arguments for ``target``.
        cmd: A program and its arguments, spawned instead of forking (``target`` None).
        threads: ``torch.set_num_threads`` in a forked run (0: leave the default).
        cwd: The run's working directory (None: this process's).
    """

    label: str
    log: str
    env: dict[str, str]
    target: Callable[[list[str]], object] | None = None
    argv: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    threads: int = 0
    cwd: str | None = None

    def __post_init__(self) -> None:
        if (self.target is None) == (self.cmd is None):
            raise ValueError(f'run {self.label!r}: give either a target or a cmd, not both')


@dataclass
class Fate:
    """How a run ended: its exit code or the signal that killed it."""

    label: str
    code: int | None
    signal: int | None
    seconds: float
    traceback: bool = False  #: its log holds a Python traceback from this attempt
    last_line: str = ''  #: the last non-empty line it wrote

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        """``exit code 0``, ``killed by SIGSEGV``, ``exit code 1 without a traceback``,
        ``exit code 1 after a traceback``; with the run's last line where it exited with
        an error (a crash leaves the Python stack in the log instead)."""
        if self.signal is not None:
            text = f'killed by {signal_name(self.signal)}'
        elif self.code == 0:
            return 'exit code 0'
        else:
            text = f'exit code {self.code}'
            text += ' after a traceback' if self.traceback else ' without a traceback'
        if self.last_line:
            text += f' (last line: {self.last_line[:200]})'
        return text


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f'signal {number}'


def _fate_of(run: Run, status: int, seconds: float, log_offset: int) -> Fate:
    if os.WIFSIGNALED(status):
        code, sig = None, os.WTERMSIG(status)
    else:
        code, sig = os.waitstatus_to_exitcode(status), None
    written = ''
    try:
        with open(run.log, 'rb') as f:
            f.seek(log_offset)
            written = f.read().decode('utf-8', 'replace')
    except OSError:
        pass
    lines = [line.strip() for line in written.splitlines() if line.strip()]
    return Fate(
        run.label,
        code,
        sig,
        seconds,
        traceback=_TRACEBACK in written,
        # where it failed on its own (a signal's death leaves a stack dump instead)
        last_line=lines[-1] if lines and code not in (0, None) else '',
    )


def _append(path: str, text: str) -> None:
    """Append ``text`` as a line of its own, on a new line if the file's last line was
    left open (a run that ended mid-line)."""
    with open(path, 'a+b') as f:
        size = f.seek(0, os.SEEK_END)
        opened = False
        if size:
            f.seek(size - 1)
            opened = f.read(1) != b'\n'
        f.write((b'\n' if opened else b'') + text.rstrip('\n').encode('utf-8') + b'\n')


def _flush_c_streams() -> None:
    """Flush the C library's stdio buffers (output of compiled code)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask (not on POSIX)
        pass


def _unbuffered(fd: int) -> io.TextIOWrapper:
    """A text stream on ``fd`` that hands every write straight to the file."""
    raw = io.FileIO(fd, 'w', closefd=False)
    return io.TextIOWrapper(
        raw, encoding='utf-8', errors='backslashreplace', line_buffering=True, write_through=True
    )


def _child(run: Run) -> None:
    """The body of a forked run; never returns."""
    code = 70  # EX_SOFTWARE: this function itself failed
    try:
        # 1. output: from here on every byte of the run goes to its log
        log = os.open(run.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout, sys.stderr = _unbuffered(1), _unbuffered(2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115  (the child's /dev/null)
        # a crash (SIGSEGV, SIGABRT...) leaves the Python stack of every thread in the log
        faulthandler.enable(file=sys.stderr, all_threads=True)
        # 2. a process of its own: default signal handling (Python's KeyboardInterrupt
        # on SIGINT), no exit functions of the parent, its own environment
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        atexit._clear()
        os.environ.clear()
        os.environ.update(run.env)
        if run.cwd:
            os.chdir(run.cwd)
        if run.threads:
            import torch

            torch.set_num_threads(run.threads)
        # 3. the run
        code = 0
        try:
            run.target(list(run.argv))
        except SystemExit as exc:  # sys.exit(n) or sys.exit('message')
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        mp_util = sys.modules.get('multiprocessing.util')
        if mp_util is not None:  # what a multiprocessing child runs at its end
            mp_util._exit_function()
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        _flush_c_streams()
        os._exit(code)


def _spawn(run: Run) -> int:
    """Start ``run.cmd`` as a new program, its output appended to its log."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, run.log, flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    cmd = list(run.cmd)
    if run.cwd:  # posix_spawn has no cwd: go through the shell's cd
        cmd = ['sh', '-c', 'cd "$0" && exec "$@"', run.cwd, *cmd]
    return os.posix_spawnp(cmd[0], cmd, run.env, file_actions=actions, setsigdef=[signal.SIGINT])


def _start(run: Run) -> int:
    os.makedirs(osp.dirname(osp.abspath(run.log)), exist_ok=True)
    if run.cmd is not None:
        return _spawn(run)
    # nothing of the parent's may be left in a buffer the child would inherit
    sys.stdout.flush()
    sys.stderr.flush()
    _flush_c_streams()
    pid = os.fork()
    if pid == 0:
        _child(run)
    return pid


class _Waiter:
    """Waits for any of the parent's running children, with a timeout (a pidfd per child
    where the system has them, else short polls)."""

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}

    def add(self, pid: int) -> None:
        if hasattr(os, 'pidfd_open'):
            try:
                self.fds[pid] = os.pidfd_open(pid)
            except OSError:
                pass

    def reap(self, pids: Iterable[int], timeout: float) -> list[tuple[int, int]]:
        """``(pid, status)`` of the children among ``pids`` that ended, waiting up to
        ``timeout`` seconds for the first one."""
        pids = list(pids)
        deadline = time.monotonic() + timeout
        while True:
            ended = []
            for pid in pids:
                got, status = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    ended.append((pid, status))
                    fd = self.fds.pop(pid, None)
                    if fd is not None:
                        os.close(fd)
            left = deadline - time.monotonic()
            if ended or left <= 0:
                return ended
            fds = [self.fds[p] for p in pids if p in self.fds]
            if len(fds) == len(pids):
                select.select(fds, [], [], left)
            else:
                time.sleep(min(left, 0.2))


def run_all(
    runs: Sequence[Run],
    jobs: int = 1,
    *,
    on_start: Callable[[Run], None] | None = None,
    on_end: Callable[[Run, Fate], None] | None = None,
    on_tick: Callable[[dict[str, float]], None] | None = None,
    tick: float = 5.0,
) -> list[Fate]:
    """Run ``runs``, ``jobs`` at a time, in order; return their fates in the same order.

    ``on_start(run)`` and ``on_end(run, fate)`` are called as runs start and end;
    ``on_tick({label: seconds running})`` every ``tick`` seconds while runs are going.
    The log of every run gets a first line naming the attempt and a last line saying
    how it ended. Interrupted (Ctrl-C or SIGTERM), the runs still going get SIGINT, then
    SIGKILL after 30 s; their fates say so and the interruption goes on to the caller.
    """
    if jobs < 1:
        raise ValueError(f'jobs must be at least 1, got {jobs}')
    pending = deque(enumerate(runs))
    running: dict[int, tuple[int, Run, float, int]] = {}
    fates: list[Fate | None] = [None] * len(runs)
    waiter = _Waiter()

    def finish(pid: int, status: int) -> None:
        index, run, started, offset = running.pop(pid)
        fate = _fate_of(run, status, time.monotonic() - started, offset)
        _append(run.log, f'[run] {run.label}: {fate.describe()} after {fate.seconds:.1f} s')
        fates[index] = fate
        if on_end is not None:
            on_end(run, fate)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    last_tick = time.monotonic()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                index, run = pending.popleft()
                os.makedirs(osp.dirname(osp.abspath(run.log)), exist_ok=True)
                _append(run.log, f'[run] {run.label}: started {time.strftime("%Y-%m-%d %H:%M:%S")}')
                offset = osp.getsize(run.log)
                if on_start is not None:
                    on_start(run)
                pid = _start(run)
                waiter.add(pid)
                running[pid] = (index, run, time.monotonic(), offset)
            wait = tick - (time.monotonic() - last_tick) if on_tick else 3600.0
            for pid, status in waiter.reap(running, max(wait, 0.0)):
                finish(pid, status)
            if on_tick is not None and running and time.monotonic() - last_tick >= tick:
                last_tick = time.monotonic()
                now = time.monotonic()
                on_tick({run.label: now - t0 for _, run, t0, _ in running.values()})
    except KeyboardInterrupt:
        _stop(running, waiter, finish)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return [fate for fate in fates if fate is not None]


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f'{signal_name(signum)} received')


def _stop(running: dict, waiter: _Waiter, finish: Callable[[int, int], None]) -> None:
    """Interrupt the runs still going (SIGINT, then SIGKILL after 30 s) and reap them."""
    for pid in running:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while running:
        left = deadline - time.monotonic()
        if left <= 0:
            for pid in running:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            left = 30
        for pid, status in waiter.reap(list(running), left):
            finish(pid, status)
