"""Runs the tools the tests call (``python tools/<tool>.py ...``) in processes forked from
one that has already imported the third-party libraries (torch, torchvision, numpy,
OpenCV, matplotlib, ...): about three quarters of a tool's start-up, paid once per test
process instead of once per run.

Everything that is the project's own is still imported afresh by every run: no module
of mmwst or of OpenMMLab (mmengine, mmcv, mmdet, mmseg, mmpretrain) is loaded here, so
registration, configs, ``custom_imports`` and import-order problems show up exactly as
in a new interpreter. Each run gets the argv, working directory, environment and
``sys.path`` that ``python tool.py`` would have, fresh standard streams on its own
files, the thread count a new interpreter takes with its environment, and Python's own exit
sequence (non-daemon threads joined, ``atexit`` handlers run, streams flushed); its exit
status is that of a fresh interpreter (0, the ``SystemExit`` code, 1 after a traceback,
or minus the signal that killed it).

Protocol, one JSON object per line: the client writes ``{"argv", "cwd", "env", "stdout",
"stderr"}`` (the last two are file paths); the server answers ``{"pid"}`` as soon as the
run is forked and ``{"status"}`` (a ``waitpid`` status) when it has ended, or
``{"error"}`` instead of both when the run could not be started. One run at a time; the
server ends when its input closes.

``tests/helpers.py`` (``run_tool``) starts one server per test process on first use;
``MMWST_TEST_FRESH_TOOLS=1`` runs every tool in a new interpreter instead.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

#: imported once here; any that is not installed is skipped (a run imports what it needs)
PRELOAD = (
    'numpy',
    'scipy',
    'scipy.ndimage',
    'sklearn',
    'PIL.Image',
    'cv2',
    'matplotlib',
    'torch',
    'torch.nn',
    'torch.distributed',
    'torch.utils.data',
    'torch._dynamo',
    'torchvision',
    'torchvision.ops',
    'torchvision.transforms',
    'timm',
    'pycocotools.coco',
    'pycocotools.mask',
    'shapely',
    'pywt',
    'einops',
    'yaml',
    'yapf',
    'rich',
    'tqdm',
    'prettytable',
    'terminaltables',
    'regex',
    'ftfy',
)


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed or not importable here: the run will say
            pass


def _site_path() -> list[str]:
    """``sys.path`` as the interpreter built it, without this script's folder and the
    entries that came from this process's ``PYTHONPATH`` (each run adds its own)."""
    own = {os.path.dirname(os.path.abspath(__file__))}
    own.update(p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p)
    return [p for p in sys.path if p not in own]


def _new_streams(env: dict) -> None:
    """Standard streams as a new interpreter opens them on files: stdout block-buffered
    (write-through under PYTHONUNBUFFERED), stderr line-buffered, stdin empty."""
    import io

    unbuffered = bool(env.get('PYTHONUNBUFFERED'))

    def writer(fd: int, *, line: bool, errors: str) -> io.TextIOWrapper:
        buffer = io.BufferedWriter(io.FileIO(fd, 'wb', closefd=False))
        return io.TextIOWrapper(
            buffer, encoding='utf-8', errors=errors, line_buffering=line, write_through=unbuffered
        )

    reader = io.BufferedReader(io.FileIO(0, 'rb', closefd=False))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(reader, encoding='utf-8')
    sys.stdout = sys.__stdout__ = writer(1, line=False, errors='strict')
    sys.stderr = sys.__stderr__ = writer(2, line=True, errors='backslashreplace')


#: environment variables that decide torch's (and its libraries') thread counts
THREAD_VARIABLES = ('OMP_', 'MKL_', 'KMP_', 'GOMP_', 'OPENBLAS_')

_fresh_thread_counts: dict = {}


def fresh_thread_count(env: dict) -> int:
    """torch's intra-op thread count in a new interpreter with ``env``, asked of one
    (once per distinct set of thread variables): with MKL it follows MKL's own rules
    (MKL_NUM_THREADS before OMP_NUM_THREADS, no more than the physical cores unless
    MKL_DYNAMIC=false), which are not worth guessing."""
    import subprocess

    key = tuple(sorted((k, v) for k, v in env.items() if k.startswith(THREAD_VARIABLES)))
    if key not in _fresh_thread_counts:
        probe = [sys.executable, '-c', 'import torch; print(torch.get_num_threads())']
        out = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
        _fresh_thread_counts[key] = int(out.stdout.split()[-1])
    return _fresh_thread_counts[key]


def _threads(count: int) -> None:
    """Take ``count`` intra-op threads (and as many for numpy's BLAS)."""
    import torch

    torch.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(count, user_api='blas')
    except Exception:  # noqa: BLE001 - numpy's BLAS keeps its count; results are unaffected
        pass


def _exit_code(error: BaseException | None) -> int:
    """What a new interpreter exits with after the main script ended with ``error``
    (-2: killed by its own SIGINT, as after an uncaught KeyboardInterrupt)."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        code = error.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1
    sys.excepthook(type(error), error, error.__traceback__)
    return -2 if isinstance(error, KeyboardInterrupt) else 1


def _run(request: dict, site_path: list[str], keep: tuple) -> None:
    """In the forked child: become ``python argv[0] argv[1:]``; never returns."""
    import atexit
    import runpy
    import signal
    import threading
    import traceback

    code = 1
    try:
        for fd in keep:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, path in ((1, request['stdout']), (2, request['stderr'])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, fd)
            os.close(out)
        env = request['env']
        _new_streams(env)
        os.chdir(request['cwd'])
        os.environ.clear()
        os.environ.update(env)
        argv = request['argv']
        extra = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
        sys.path[:] = [os.path.dirname(os.path.abspath(argv[0])), *extra, *site_path]
        sys.argv = list(argv)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _threads(request['threads'])
        error = None
        try:
            runpy.run_path(argv[0], run_name='__main__')
        except BaseException as exc:  # noqa: BLE001 - reported as the interpreter would
            error = exc
        code = _exit_code(error)
        threading._shutdown()  # as the interpreter does: wait for non-daemon threads
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - the set-up itself failed: say so on stderr
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed stream: nothing left to write
                pass
        if code == -2:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code if code >= 0 else 1)


def serve() -> None:
    # OpenBLAS (numpy) on one thread: no thread pool is running when a run is forked
    _preload()
    site_path = _site_path()
    requests = os.fdopen(os.dup(0), 'r', encoding='utf-8')
    replies = os.dup(1)
    # nothing of the runs reaches the client's pipes
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    keep = (requests.fileno(), replies)

    def reply(obj: dict) -> None:
        os.write(replies, (json.dumps(obj) + '\n').encode())

    for line in requests:
        request = json.loads(line)
        try:
            request['threads'] = fresh_thread_count(request['env'])
        except Exception as exc:  # noqa: BLE001 - the run is not started: say why
            reply({'error': f'asking a new interpreter for its thread count failed: {exc!r}'})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run(request, site_path, keep)
        reply({'pid': pid})
        _, status = os.waitpid(pid, 0)
        reply({'status': status})


if __name__ == '__main__':
    serve()
