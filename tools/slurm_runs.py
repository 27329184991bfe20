"""Run trainings as one Slurm job array (tools/vtab_sweep.py --launcher slurm).

Each run gets a script of its own, ``slurm_run.sh`` in its folder, and is one task of
the array; one batch script (``<work-dir>/slurm/<job name>_<time>.sh``) picks the run
script of its task. Nothing waits for the jobs: the sweep submits and returns, and a
later call collects what has finished.

A run's script, on the node that runs it:

* appends the run's whole output to ``sweep.log`` in its folder, between a first line
  ``[run] LABEL: started ...`` and a last line ``[run] LABEL: exit code N after S s``,
  as a local run does;
* trains - with one process (``GPUS=1``) as ``tools/train.py``, with more through
  ``srun`` and ``tools/train.py --launcher slurm``, one process per GPU, as
  tools/slurm_train.sh does; ``--resume auto``, so a run requeued or re-submitted goes
  on from its last checkpoint;
* after a successful training, writes the run's ``result.json`` from its work dir
  (``tools/vtab_report.py task-result``), and in any case ``slurm_ended.json``: its exit
  code and seconds.

The sweep writes ``slurm_submitted.json`` (the job id and array index) into a run's
folder when it submits it. From these files a run's state is known without asking
Slurm: finished (``result.json``), failed (ended with another exit code), or in Slurm's
hands (submitted, not ended: queued or running). Only for the last, ``squeue`` is asked
whether the task still exists (a cancelled job or a lost node ends no run script); if
it cannot tell, the run counts as queued or running.

Resources come from options or the environment, as in tools/slurm_train.sh:
``PARTITION`` (else the cluster's default partition), ``JOB_NAME``, ``GPUS`` per run
(default 1), ``GPUS_PER_NODE`` (default ``min(GPUS, 8)``), ``CPUS_PER_TASK`` (default 5),
``SRUN_ARGS`` (more ``srun`` options, for runs of several processes) and
``SBATCH_ARGS`` (more ``sbatch`` options, e.g. ``--time=4:00:00 --qos=...``).
"""

from __future__ import annotations

import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

HERE = osp.dirname(osp.abspath(__file__))
SUBMITTED = 'slurm_submitted.json'
ENDED = 'slurm_ended.json'
RUN_SCRIPT = 'slurm_run.sh'


@dataclass
class Resources:
    """What each array task asks Slurm for."""

    partition: str | None = None
    job_name: str = 'vtab_sweep'
    gpus: int = 1  #: processes (GPUs) per run
    gpus_per_node: int = 1
    cpus_per_task: int = 5
    array_limit: int | None = None  #: array tasks running at once (``%N``)
    srun_args: list[str] = field(default_factory=list)
    sbatch_args: list[str] = field(default_factory=list)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        partition: str | None = None,
        job_name: str | None = None,
        gpus: int | None = None,
        array_limit: int | None = None,
    ) -> Resources:
        """Options first, then the environment (tools/slurm_train.sh's names)."""
        gpus = gpus if gpus is not None else _int(env, 'GPUS', 1)
        if gpus < 1:
            raise ValueError(f'GPUS (processes per run) must be at least 1, got {gpus}')
        per_node = _int(env, 'GPUS_PER_NODE', min(gpus, 8))
        if per_node < 1:
            raise ValueError(f'GPUS_PER_NODE must be at least 1, got {per_node}')
        return cls(
            partition=partition or env.get('PARTITION') or None,
            job_name=job_name or env.get('JOB_NAME') or 'vtab_sweep',
            gpus=gpus,
            gpus_per_node=per_node,
            cpus_per_task=_int(env, 'CPUS_PER_TASK', 5),
            array_limit=array_limit,
            srun_args=shlex.split(env.get('SRUN_ARGS', '')),
            sbatch_args=shlex.split(env.get('SBATCH_ARGS', '')),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, '').strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f'{name}={value!r} is not a whole number') from None


@dataclass
class SlurmRun:
    """One training: its label, folder, environment and tools/train.py arguments."""

    label: str
    run_dir: str
    env: dict[str, str]  #: the variables the run sets (added to the job's environment)
    argv: list[str]  #: tools/train.py's arguments (config first)


def run_script(run: SlurmRun, resources: Resources, python: str, cwd: str) -> str:
    """The shell script of one run (``slurm_run.sh``)."""
    q = shlex.quote
    run_dir = osp.abspath(run.run_dir)
    log = osp.join(run_dir, 'sweep.log')
    train = osp.join(HERE, 'train.py')
    if resources.gpus > 1:  # one process per GPU, started by srun (tools/slurm_train.sh)
        launch = [
            'srun',
            f'--ntasks={resources.gpus}',
            f'--ntasks-per-node={resources.gpus_per_node}',
            f'--cpus-per-task={resources.cpus_per_task}',
            '--kill-on-bad-exit=1',
            *resources.srun_args,
            python,
            '-u',
            train,
            *run.argv,
            '--launcher',
            'slurm',
        ]
    else:
        launch = [python, '-u', train, *run.argv]
    report = [python, osp.join(HERE, 'vtab_report.py'), 'task-result', run_dir]
    ended = q(osp.join(run_dir, ENDED))
    lines = [
        '#!/usr/bin/env bash',
        f'# {run.label}: one run of a sweep, started by Slurm (tools/vtab_sweep.py wrote it)',
        'set -u',
        f'cd {q(cwd)}',
        f'mkdir -p {q(run_dir)}',
        f'exec >>{q(log)} 2>&1',
        f'rm -f {ended}',
        f"echo \"[run] {_echo(run.label)}: started $(date '+%Y-%m-%d %H:%M:%S')"
        ' as Slurm job ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID:-?}'
        ' on $(hostname)"',
        *(f'export {name}={q(value)}' for name, value in sorted(run.env.items())),
        'start=$SECONDS',
        ' '.join(q(a) for a in launch),
        'code=$?',
        'seconds=$((SECONDS - start))',
        'if [ "$code" -eq 0 ]; then',
        f'    {" ".join(q(a) for a in report)} --seconds "$seconds" || code=$?',
        'fi',
        f'printf \'{{"code": %d, "seconds": %d}}\\n\' "$code" "$seconds" >{ended}',
        f'echo "[run] {_echo(run.label)}: exit code $code after $seconds s"',
        'exit "$code"',
    ]
    return '\n'.join(lines) + '\n'


def _echo(text: str) -> str:
    """``text`` safe inside a double-quoted shell string."""
    return ''.join('\\' + c if c in '"$`\\' else c for c in text)


def batch_script(scripts: Sequence[str]) -> str:
    """The array's batch script: task ``i`` runs ``scripts[i]``."""
    listed = '\n'.join(f'    {shlex.quote(s)}' for s in scripts)
    return (
        '#!/usr/bin/env bash\n'
        '# A sweep as a Slurm job array (tools/vtab_sweep.py --launcher slurm): array task i\n'
        '# runs the i-th run script below, which logs to its own run folder.\n'
        'set -euo pipefail\n'
        f'runs=(\n{listed}\n)\n'
        'exec bash "${runs[$SLURM_ARRAY_TASK_ID]}"\n'
    )


def sbatch_command(resources: Resources, count: int, script: str, output: str) -> list[str]:
    """The ``sbatch`` call that submits ``count`` runs as one array."""
    array = f'0-{count - 1}'
    if resources.array_limit:
        array += f'%{resources.array_limit}'
    nodes = -(-resources.gpus // resources.gpus_per_node)
    cmd = ['sbatch', '--parsable', f'--array={array}', f'--job-name={resources.job_name}']
    if resources.partition:
        cmd.append(f'--partition={resources.partition}')
    cmd += [
        f'--nodes={nodes}',
        f'--gres=gpu:{resources.gpus_per_node}',
        f'--ntasks={resources.gpus}',
        f'--ntasks-per-node={min(resources.gpus, resources.gpus_per_node)}',
        f'--cpus-per-task={resources.cpus_per_task}',
        f'--output={output}',
        *resources.sbatch_args,
        script,
    ]
    return cmd


def submit(
    runs: Sequence[SlurmRun],
    resources: Resources,
    work_dir: str,
    *,
    python: str | None = None,
    cwd: str | None = None,
) -> str:
    """Write the run scripts and the batch script, submit the array, mark every run as
    submitted; return the job id."""
    python = python or sys.executable
    cwd = osp.abspath(cwd or os.getcwd())
    scripts = []
    for run in runs:
        os.makedirs(run.run_dir, exist_ok=True)
        path = osp.abspath(osp.join(run.run_dir, RUN_SCRIPT))
        with open(path, 'w') as f:
            f.write(run_script(run, resources, python, cwd))
        os.chmod(path, 0o755)
        scripts.append(path)
    slurm_dir = osp.abspath(osp.join(work_dir, 'slurm'))
    os.makedirs(slurm_dir, exist_ok=True)
    stem = f'{resources.job_name}_{time.strftime("%Y%m%d_%H%M%S")}'
    batch = osp.join(slurm_dir, f'{stem}.sh')
    with open(batch, 'w') as f:
        f.write(batch_script(scripts))
    os.chmod(batch, 0o755)
    # marked before sbatch returns: a task may start (and end) before it does
    for index, run in enumerate(runs):
        _write_json(
            osp.join(run.run_dir, SUBMITTED),
            dict(job=None, index=index, batch=batch, submitted=time.time()),
        )
        _remove(osp.join(run.run_dir, ENDED))
    cmd = sbatch_command(resources, len(runs), batch, osp.join(slurm_dir, f'{stem}_%A_%a.out'))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        for run in runs:
            _remove(osp.join(run.run_dir, SUBMITTED))
        raise RuntimeError(
            "sbatch was not found: --launcher slurm submits with Slurm's sbatch (run it on "
            'a machine of the cluster, or run the sweep locally without --launcher)'
        ) from None
    if proc.returncode != 0:
        for run in runs:
            _remove(osp.join(run.run_dir, SUBMITTED))
        raise RuntimeError(
            f'sbatch failed with exit code {proc.returncode}: {proc.stderr.strip()}\n'
            f'(command: {shlex.join(cmd)})'
        )
    job = proc.stdout.strip().splitlines()[-1].split(';')[0].strip()
    for index, run in enumerate(runs):
        marker = osp.join(run.run_dir, SUBMITTED)
        _write_json(marker, dict(_read_json(marker) or {}, job=job, index=index))
    return job


def _write_json(path: str, data: dict) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


@dataclass
class RunState:
    """Where a run stands: ``'finished'`` (its ``result.json`` is there), ``'ended'``
    (trained, its result not written yet), ``'failed'``, ``'in_slurm'`` (queued or
    running) or ``'pending'`` (never submitted, or lost by Slurm)."""

    state: str
    job: str | None = None  #: ``<array job id>_<index>`` when it was submitted
    code: int | None = None  #: the exit code of a run that ended
    seconds: float | None = None


def run_state(run_dir: str, alive: set[str] | None) -> RunState:
    """The state of one run from its folder's files; ``alive`` is the array tasks
    Slurm still knows (``None``: unknown, every submitted run counts as alive)."""
    submitted = _read_json(osp.join(run_dir, SUBMITTED))
    if osp.isfile(osp.join(run_dir, 'result.json')):
        job = submitted and f'{submitted.get("job")}_{submitted.get("index")}'
        return RunState('finished', job or None)
    if submitted is None:
        return RunState('pending')
    job = f'{submitted.get("job")}_{submitted.get("index")}'
    ended = _read_json(osp.join(run_dir, ENDED))
    if ended is not None:
        code = int(ended.get('code', 1))
        state = 'ended' if code == 0 else 'failed'
        return RunState(state, job, code, ended.get('seconds'))
    if submitted.get('job') is None:  # sbatch never answered for it
        return RunState('pending')
    if alive is not None and job not in alive:
        return RunState('pending', job)  # cancelled, or its node was lost
    return RunState('in_slurm', job)


def tasks_alive(run_dirs: Sequence[str]) -> set[str] | None:
    """The array tasks (``<job>_<index>``) that Slurm still holds among those the runs
    were submitted as, from ``squeue``; None when squeue cannot tell."""
    jobs = set()
    for run_dir in run_dirs:
        submitted = _read_json(osp.join(run_dir, SUBMITTED))
        if (
            submitted
            and submitted.get('job')
            and not osp.isfile(osp.join(run_dir, ENDED))
            and not osp.isfile(osp.join(run_dir, 'result.json'))
        ):
            jobs.add(str(submitted['job']))
    if not jobs:
        return set()
    cmd = ['squeue', '--noheader', '--array', '--format=%i', f'--jobs={",".join(sorted(jobs))}']
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        # jobs that have left the queue altogether are an error for squeue
        return set() if 'Invalid job id' in proc.stderr else None
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}
