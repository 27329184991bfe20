"""tests/tool_server.py runs a tool as a new interpreter would: each case runs the same
script once through the server and once in a new interpreter (MMWST_TEST_FRESH_TOOLS=1),
and both must give the same exit status, output and view of the process."""

import json
import os
import textwrap

import pytest

from tests.helpers import run_tool, tool_env

PROBE = textwrap.dedent(
    """
    import atexit, json, os, sys, threading, time
    # what a tool sees when it starts, before it imports anything itself
    own = sorted(m for m in sys.modules if m.split('.')[0] in (
        'mmwst', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain'))
    how = sys.argv[1]
    threads = None
    if os.environ.get('PROBE_THREADS'):  # torch only where its thread count is compared
        import torch
        threads = torch.get_num_threads()
    print(json.dumps(dict(
        argv=sys.argv[1:], cwd=os.getcwd(), path0=sys.path[0],
        pythonpath_first=sys.path[1], own_modules=own,
        marker=os.environ.get('PROBE_MARKER'), threads=threads,
        stdin=sys.stdin.read(), main=__name__, file=os.path.basename(__file__),
    )))
    atexit.register(lambda: print('atexit ran'))
    if how == 'exit3':
        sys.exit(3)
    if how == 'exit_message':
        sys.exit('stopped: a message')
    if how == 'raise':
        raise ValueError('a bad value')
    if how == 'sigkill':
        sys.stdout.flush()
        os.kill(os.getpid(), 9)
    if how == 'unflushed':
        sys.stdout.write('no newline, no flush')
    if how == 'thread':
        threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()
    print('to stderr', file=sys.stderr)
    """
)

CASES = ['ok', 'exit3', 'exit_message', 'raise', 'sigkill', 'unflushed', 'thread']


@pytest.fixture(scope='module')
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp('probe_tool')
    (folder / 'probe.py').write_text(PROBE)
    (folder / 'elsewhere').mkdir()
    return folder


def _run(probe, how: str, fresh: bool, monkeypatch, torch_threads=False, **threads: str):
    """The probe with ``threads`` (OMP_NUM_THREADS / MKL_NUM_THREADS; by default
    OMP_NUM_THREADS=2 alone) instead of whatever this process's environment says; with
    ``torch_threads`` it imports torch and reports torch's thread count (a new
    interpreter's import of torch is most of the probe's time, so only then)."""
    monkeypatch.setenv('MMWST_TEST_FRESH_TOOLS', '1' if fresh else '0')
    extra = str(probe / 'elsewhere')
    env = tool_env(PROBE_MARKER='m')
    if torch_threads:
        env['PROBE_THREADS'] = '1'
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env.pop(name, None)
    env.update(threads or {'OMP_NUM_THREADS': '2'})
    env['PYTHONPATH'] = extra + os.pathsep + env['PYTHONPATH']
    return run_tool(
        [str(probe / 'probe.py'), how, 'b c'], cwd=str(probe / 'elsewhere'), env=env, check=False
    )


@pytest.mark.parametrize(
    'threads',
    [{}, {'OMP_NUM_THREADS': '3'}, {'OMP_NUM_THREADS': '2', 'MKL_NUM_THREADS': '3'}],
    ids=['default', 'omp', 'omp+mkl'],
)
def test_the_thread_count_is_a_new_interpreters(probe, threads, monkeypatch):
    """torch's thread count as a new interpreter sets it from the environment (with
    MKL: MKL_NUM_THREADS before OMP_NUM_THREADS, at most the physical cores; neither:
    torch's own default)."""
    threads = threads or {'UNSET': '1'}  # no thread variable at all
    seen = [
        json.loads(
            _run(
                probe, 'ok', fresh, monkeypatch, torch_threads=True, **threads
            ).stdout.splitlines()[0]
        )
        for fresh in (False, True)
    ]
    assert seen[0]['threads'] == seen[1]['threads'] is not None, threads


@pytest.mark.parametrize('how', CASES)
def test_a_tool_run_through_the_server_is_a_new_interpreter(probe, how, monkeypatch):
    served = _run(probe, how, fresh=False, monkeypatch=monkeypatch)
    fresh = _run(probe, how, fresh=True, monkeypatch=monkeypatch)
    assert served.returncode == fresh.returncode
    assert served.stdout == fresh.stdout
    # a traceback names the interpreter's own frames only when it is one: compare the rest
    assert served.stderr.splitlines()[-1:] == fresh.stderr.splitlines()[-1:]
    expected = {'ok': 0, 'exit3': 3, 'exit_message': 1, 'raise': 1, 'sigkill': -9}
    assert served.returncode == expected.get(how, 0)
    seen = json.loads(served.stdout.splitlines()[0])
    assert seen['argv'] == [how, 'b c'] and seen['own_modules'] == []
    assert seen['cwd'] == str(probe / 'elsewhere')
    assert seen['path0'] == str(probe) and seen['pythonpath_first'] == str(probe / 'elsewhere')
    assert seen['marker'] == 'm' and seen['stdin'] == '' and seen['main'] == '__main__'
    if how != 'sigkill':
        assert 'atexit ran' in served.stdout
    if how == 'unflushed':
        assert 'no newline, no flush' in served.stdout
    if how == 'thread':
        assert 'thread done' in served.stdout
    if how == 'raise':
        assert 'Traceback' in served.stderr and 'ValueError: a bad value' in served.stderr
    if how == 'exit_message':
        assert served.stderr.endswith('stopped: a message\n')
