"""tools/vtab_sweep.py --launcher slurm: every pending run submitted as one job array,
results collected by --report-only, finished and queued runs never submitted twice.

Slurm is played by stand-ins on PATH, written here: ``sbatch`` records its arguments
and runs the array's tasks on this machine one after another (or holds them, as a
busy queue does), ``squeue`` lists the tasks a file says are still queued.
"""

import csv
import json
import os
import os.path as osp
import shlex
import sys

import pytest

from tests.helpers import REPO, TOOLS, run_tool, tool_env

pytestmark = pytest.mark.slow

HEALTHY = osp.join(REPO, 'configs', 'demo', 'digits_vit_tiny.py')

SBATCH = """\
#!{python}
import json, os, subprocess, sys

state = os.environ['FAKE_SLURM']
args = sys.argv[1:]
with open(os.path.join(state, 'sbatch_calls.jsonl'), 'a') as f:
    f.write(json.dumps(args) + '\\n')
with open(os.path.join(state, 'sbatch_calls.jsonl')) as f:
    job = str(7000 + sum(1 for _ in f))
options = dict(a[2:].split('=', 1) for a in args if a.startswith('--') and '=' in a)
first, last = map(int, options['array'].split('%')[0].split('-'))
if not os.path.exists(os.path.join(state, 'hold')):
    for index in range(first, last + 1):
        out = options['output'].replace('%A', job).replace('%a', str(index))
        env = dict(os.environ, SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_ID=str(index))
        with open(out, 'w') as f:
            subprocess.run(['bash', args[-1]], env=env, stdout=f, stderr=subprocess.STDOUT)
print(job)
"""

SQUEUE = """\
#!/usr/bin/env bash
# the array tasks still queued, one a line (squeue --noheader --array --format=%i)
cat "$FAKE_SLURM/queued"
"""


@pytest.fixture
def slurm(tmp_path):
    """The stand-ins and their state folder; ``calls()`` gives sbatch's argument lists."""
    bin_dir, state = tmp_path / 'bin', tmp_path / 'slurm_state'
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / 'sbatch').write_text(SBATCH.format(python=sys.executable))
    (bin_dir / 'squeue').write_text(SQUEUE)
    for tool in ('sbatch', 'squeue'):
        (bin_dir / tool).chmod(0o755)
    (state / 'queued').write_text('')

    def calls():
        path = state / 'sbatch_calls.jsonl'
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    env = dict(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', FAKE_SLURM=str(state))
    return dict(state=state, calls=calls, env=env)


def _args(configs, work, digits_root, *extra) -> list[str]:
    return [
        *configs,
        '--tasks',
        'digits',
        '--data-root',
        osp.dirname(digits_root),
        '--work-dir',
        str(work),
        *extra,
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'train_dataloader.dataset.indices=32',
        'val_dataloader.dataset.indices=32',
        'test_dataloader.dataset.indices=32',
    ]


def _sweep(configs, work, digits_root, slurm, *extra, env=None):
    """The sweep as a user starts it: ``python tools/vtab_sweep.py ...``."""
    args = [osp.join(TOOLS, 'vtab_sweep.py'), *_args(configs, work, digits_root, *extra)]
    return run_tool(
        args, cwd=REPO, env=tool_env(**slurm['env'], **(env or {})), check=False, timeout=900
    )


@pytest.fixture
def sweep_here(slurm, monkeypatch, capsys):
    """The sweep's ``main`` in this process, which has imported the stack already (a
    second each, where a new process takes several to import it): for calls that only
    submit or collect. Returns ``(exit code, stdout, stderr)``."""
    monkeypatch.syspath_prepend(TOOLS)
    monkeypatch.chdir(REPO)
    for name, value in slurm['env'].items():
        monkeypatch.setenv(name, value)
    import vtab_sweep

    def sweep(configs, work, digits_root, *extra):
        capsys.readouterr()
        try:
            code = vtab_sweep.main(_args(configs, work, digits_root, *extra))
        except SystemExit as exit:  # argparse
            code = exit.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return sweep


def test_a_sweep_runs_as_one_job_array_and_is_collected(digits_root, slurm, sweep_here, tmp_path):
    broken = tmp_path / 'broken' / 'vit_tiny_no_such_arch.py'
    broken.parent.mkdir()
    broken.write_text(f'_base_ = [{HEALTHY!r}]\nmodel = dict(backbone=dict(arch="no-such-arch"))\n')
    configs, work = [HEALTHY, str(broken)], tmp_path / 'work'
    options = ['--launcher', 'slurm', '--partition', 'p1', '--jobs', '1', '--threads', '1']
    resources = dict(CPUS_PER_TASK='3', SBATCH_ARGS='--time=0:10:00 --qos=low')

    first = _sweep(configs, work, digits_root, slurm, *options, env=resources)
    assert first.returncode == 0, first.stdout + first.stderr
    (call,) = slurm['calls']()
    assert call[:4] == ['--parsable', '--array=0-1%1', '--job-name=vtab_sweep', '--partition=p1']
    for arg in ('--gres=gpu:1', '--ntasks=1', '--cpus-per-task=3', '--time=0:10:00', '--qos=low'):
        assert arg in call, call
    batch = call[-1]
    assert batch.startswith(str(work / 'slurm')) and 'slurm_run.sh' in open(batch).read()
    assert 'submitted 2 runs as Slurm job array 7001' in first.stdout
    assert first.stdout.rstrip().endswith('--report-only')

    healthy, failed = work / 'demo' / 'digits' / 'seed0', work / 'broken' / 'digits' / 'seed0'
    # the job wrote the finished run's result from its work dir, and its whole log
    result = json.loads((healthy / 'result.json').read_text())
    assert result['validations'] == 1 and 'seconds' in result and result['trainable'] > 0
    log = (healthy / 'sweep.log').read_text().splitlines()
    assert log[0].startswith('[run] demo / digits / seed 0: started ')
    assert log[0].endswith('as Slurm job 7001_0 on ' + os.uname().nodename)
    assert log[-1].startswith('[run] demo / digits / seed 0: exit code 0 after ')
    assert any('Epoch(val) [1]' in line for line in log)
    assert 'export OMP_NUM_THREADS=1' in (healthy / 'slurm_run.sh').read_text()  # --threads
    assert json.loads((healthy / 'slurm_submitted.json').read_text())['job'] == '7001'
    # the failed run: its error in its own log, no result
    assert not (failed / 'result.json').exists()
    assert json.loads((failed / 'slurm_ended.json').read_text())['code'] == 1
    assert 'Arch no-such-arch is not in default archs' in (failed / 'sweep.log').read_text()

    # again (the queue busy now): only the failed run is submitted
    (slurm['state'] / 'hold').write_text('')
    code, out, err = sweep_here(configs, work, digits_root, *options)
    assert code == 0, out + err
    calls = slurm['calls']()
    assert len(calls) == 2 and calls[1][1] == '--array=0-0%1'
    assert 'broken / digits / seed 0: failed as Slurm job 7001_1 (1); again' in out
    retried = open(calls[1][-1]).read()
    assert str(failed / 'slurm_run.sh') in retried and str(healthy) not in retried

    # a job that trained but did not store its result: the report step stores it
    (healthy / 'result.json').unlink()
    (slurm['state'] / 'queued').write_text('7002_0\n')  # the retry, still queued
    code, out, err = sweep_here(configs, work, digits_root, '--report-only')
    assert code == 0, out + err
    assert json.loads((healthy / 'result.json').read_text())['final'] == result['final']
    assert '[sweep] Slurm runs: 1 finished, 1 queued or running' in out
    with open(work / 'vtab_results.csv') as f:
        rows = {row[0]: row for row in csv.reader(f)}
    assert float(rows['demo'][1]) == pytest.approx(result['final'], abs=0.01)
    assert rows['broken'][1] == ''  # no result
    assert len(slurm['calls']()) == 2  # collecting submits nothing


def test_queued_runs_are_not_submitted_twice_and_lost_ones_are(
    digits_root, slurm, sweep_here, tmp_path
):
    work = tmp_path / 'work'
    (slurm['state'] / 'hold').write_text('')  # a busy queue: nothing starts
    options = ['--launcher', 'slurm', '--seeds', '0', '1']
    code, out, err = sweep_here([HEALTHY], work, digits_root, *options)
    assert code == 0, out + err
    assert '[sweep] Slurm runs: 2 queued or running' in out
    # Slurm still holds both: nothing is submitted
    (slurm['state'] / 'queued').write_text('7001_0\n7001_1\n')
    code, out, err = sweep_here([HEALTHY], work, digits_root, *options)
    assert code == 0 and 'nothing to submit' in out and len(slurm['calls']()) == 1
    assert 'demo / digits / seed 1: queued or running as Slurm job 7001_1' in out
    code, out, err = sweep_here([HEALTHY], work, digits_root, '--seeds', '0', '1', '--report-only')
    assert code == 0 and '[sweep] Slurm runs: 2 queued or running' in out
    # task 1 left the queue without running (cancelled): it alone is submitted again
    (slurm['state'] / 'queued').write_text('7001_0\n')
    code, out, err = sweep_here([HEALTHY], work, digits_root, *options)
    assert code == 0, out + err
    calls = slurm['calls']()
    assert len(calls) == 2 and calls[1][1] == '--array=0-0'
    assert str(work / 'demo' / 'digits' / 'seed1') in open(calls[1][-1]).read()
    submitted = json.loads(
        (work / 'demo' / 'digits' / 'seed1' / 'slurm_submitted.json').read_text()
    )
    assert (submitted['job'], submitted['index']) == ('7002', 0)


def test_runs_of_several_gpus_start_through_srun(tmp_path):
    """GPUS > 1: srun starts one process per GPU with tools/train.py --launcher slurm
    (tools/slurm_train.sh's way); the resources come from the environment."""
    from tools import slurm_runs

    env = dict(GPUS='16', CPUS_PER_TASK='4', SRUN_ARGS='--exclusive', PARTITION='big')
    resources = slurm_runs.Resources.from_env(env, job_name='sw')
    assert (resources.gpus, resources.gpus_per_node, resources.partition) == (16, 8, 'big')
    run = slurm_runs.SlurmRun('m / t / seed 0', str(tmp_path / 'run'), {'VTAB_TASK': 't'}, ['c.py'])
    script = slurm_runs.run_script(run, resources, '/env/bin/python', str(tmp_path))
    (launch,) = [line for line in script.splitlines() if line.startswith('srun ')]
    assert shlex.split(launch) == [
        'srun',
        '--ntasks=16',
        '--ntasks-per-node=8',
        '--cpus-per-task=4',
        '--kill-on-bad-exit=1',
        '--exclusive',
        '/env/bin/python',
        '-u',
        osp.join(REPO, 'tools', 'train.py'),
        'c.py',
        '--launcher',
        'slurm',
    ]
    assert 'export VTAB_TASK=t' in script
    cmd = slurm_runs.sbatch_command(resources, 3, 'batch.sh', 'out_%A_%a.log')
    for arg in ('--array=0-2', '--partition=big', '--nodes=2', '--gres=gpu:8', '--ntasks=16'):
        assert arg in cmd, cmd
    with pytest.raises(ValueError, match="GPUS='x' is not a whole number"):
        slurm_runs.Resources.from_env(dict(GPUS='x'))


def test_slurm_needs_sbatch(digits_root, sweep_here, monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + ':/usr/bin:/bin')
    code, out, err = sweep_here([HEALTHY], tmp_path / 'work', digits_root, '--launcher', 'slurm')
    assert code == 1
    assert 'sbatch was not found' in err
    assert not (tmp_path / 'work' / 'demo' / 'digits' / 'seed0' / 'slurm_submitted.json').exists()
