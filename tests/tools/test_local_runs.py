"""tools/local_runs.py: every run's output lands in its own log, whole, and every run's
fate (exit code or signal) is known, however it ends.

These runs are plain Python functions forked from the test process, a few milliseconds
each; tests/tools/test_vtab_sweep.py checks the same through real trainings.
"""

import os
import signal
import sys
import time

import pytest

from tools.local_runs import Fate, Run, run_all, threads_per_run


def _ok(argv):
    print('hello from', argv[0])
    print('to stderr', file=sys.stderr)


def _segfault(argv):
    print('about to crash')
    os.kill(os.getpid(), signal.SIGSEGV)


def _unflushed_exit(argv):
    sys.stdout.write('written without a newline or a flush')
    os._exit(3)


def _raises(argv):
    raise RuntimeError('the run broke')


def _exits_with_message(argv):
    sys.exit('[mmwst] a message, no traceback')


def _run(tmp_path, target, label='r', argv=('x',)) -> tuple[Fate, str]:
    log = str(tmp_path / f'{label}.log')
    (fate,) = run_all([Run(label, log, dict(os.environ), target=target, argv=list(argv))])
    with open(log) as f:
        return fate, f.read()


def test_a_healthy_run_logs_everything_and_exits_zero(tmp_path, capfd):
    fate, log = _run(tmp_path, _ok, argv=['first'])
    assert fate.ok and fate.code == 0 and fate.signal is None
    assert 'hello from first\n' in log and 'to stderr\n' in log
    lines = log.splitlines()
    assert lines[0].startswith('[run] r: started') and lines[-1].startswith('[run] r: exit code 0')
    out, err = capfd.readouterr()
    assert 'hello' not in out + err  # nothing of the run reaches the parent's streams


def test_a_run_killed_by_a_signal_says_so(tmp_path):
    fate, log = _run(tmp_path, _segfault)
    assert fate.code is None and fate.signal == signal.SIGSEGV and not fate.ok
    assert fate.describe() == 'killed by SIGSEGV'
    assert log.splitlines()[-1].startswith('[run] r: killed by SIGSEGV')
    # what it printed, then the Python stack at the crash
    assert 'about to crash\n' in log and 'Fatal Python error: Segmentation fault' in log
    assert 'in _segfault' in log


def test_output_written_just_before_an_abrupt_exit_is_kept(tmp_path):
    """os._exit skips every flush: the run's streams must not buffer at all."""
    fate, log = _run(tmp_path, _unflushed_exit)
    assert fate.code == 3 and not fate.traceback
    # kept, and the end line starts a line of its own
    assert 'written without a newline or a flush\n[run] r: exit code 3' in log
    assert fate.describe().startswith('exit code 3 without a traceback')
    assert 'exit code 3 without a traceback' in log.splitlines()[-1]


def test_an_exception_leaves_its_traceback_and_sys_exit_its_message(tmp_path):
    fate, log = _run(tmp_path, _raises, label='a')
    assert fate.code == 1 and fate.traceback
    assert 'Traceback (most recent call last)' in log and 'RuntimeError: the run broke' in log
    assert (
        fate.describe() == 'exit code 1 after a traceback (last line: RuntimeError: the run broke)'
    )
    fate, log = _run(tmp_path, _exits_with_message, label='b')
    assert fate.code == 1 and not fate.traceback
    assert fate.last_line == '[mmwst] a message, no traceback'


def test_every_fate_of_many_short_concurrent_runs_is_right(tmp_path):
    """Many runs ending at nearly the same time, 4 at once: each one's code, signal and
    log are its own (multiprocessing's fork server, started from 4 threads as the earlier sweep did,
    reported about 1 healthy child in 10 as exit code 255 under this load;
    tests/tools/test_vtab_sweep.py's stress test does the same through real trainings)."""
    kinds = [_ok, _segfault, _unflushed_exit, _raises] * 12
    runs = [
        Run(f'run{i}', str(tmp_path / f'run{i}.log'), dict(os.environ), target=t, argv=[f'run{i}'])
        for i, t in enumerate(kinds)
    ]
    ended = []
    fates = run_all(runs, jobs=4, on_end=lambda run, fate: ended.append(run.label))
    assert sorted(ended) == sorted(r.label for r in runs) and len(fates) == len(runs)
    for run, fate in zip(runs, fates):
        assert fate.label == run.label
        with open(run.log) as f:
            log = f.read()
        expected = {
            _ok: (0, None),
            _segfault: (None, signal.SIGSEGV),
            _unflushed_exit: (3, None),
            _raises: (1, None),
        }[run.target]
        assert (fate.code, fate.signal) == expected, (run.label, fate)
        assert log.count('[run] ') == 2  # its own start and end, no other run's
        if run.target is _ok:
            assert f'hello from {run.label}\n' in log


def test_an_interrupted_sweep_stops_its_runs_and_reports_them(tmp_path):
    def sleeper(argv):
        time.sleep(60)

    def interrupt_soon(run):
        signal.setitimer(signal.ITIMER_REAL, 0.5)

    previous = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    runs = [Run('s', str(tmp_path / 's.log'), dict(os.environ), target=sleeper)]
    try:
        with pytest.raises(KeyboardInterrupt):
            run_all(runs, on_start=interrupt_soon)
    finally:
        signal.signal(signal.SIGALRM, previous)
    log = (tmp_path / 's.log').read_text()
    # the run was stopped by the SIGINT it was sent (its sleep interrupted), not killed
    assert 'in sleeper' in log and 'KeyboardInterrupt' in log
    assert 'exit code 1 after a traceback' in log


def test_threads_are_shared_out_over_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3, 4}, raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 64)
    assert threads_per_run(2) == 2 and threads_per_run(1) == 5 and threads_per_run(8) == 1


def test_a_run_needs_a_target_or_a_command():
    with pytest.raises(ValueError, match='either a target or a cmd'):
        Run('r', 'log', {})
