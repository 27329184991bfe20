"""Helpers shared by the tests: paths, running the tools, tiny config overrides."""

from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'digits_vit_tiny.py')


@contextlib.contextmanager
def torch_threads(count: int):
    """Run the block with ``count`` intra-op threads in torch, restoring the count after.

    Sums and matrix products split their work by thread, so their rounding - and what a
    few training steps make of it - depends on the thread count; tests that assert
    training outcomes fix it instead of taking the machine's."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tool_env(**extra: str) -> dict:
    """Environment for a tool subprocess: this interpreter, 1 thread per process (whatever
    the caller's environment says: the thread count changes a run's rounding; pass
    ``OMP_NUM_THREADS`` in ``extra`` to choose another)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHON'] = sys.executable
    env.update(extra)
    return env


def _read_text(path: str) -> str:
    with open(path, encoding='utf-8', errors='backslashreplace') as f:
        return f.read()


class _ToolServer:
    """The client of ``tests/tool_server.py``: one server per test process, started on
    first use; its input closes (and it ends) when this process exits."""

    instance: _ToolServer | None = None

    def __init__(self) -> None:
        env = tool_env(OPENBLAS_NUM_THREADS='1', MKL_NUM_THREADS='1')
        self.proc = subprocess.Popen(
            [sys.executable, osp.join(REPO, 'tests', 'tool_server.py')],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=env,
        )
        self.pending = b''

    @classmethod
    def get(cls) -> _ToolServer:
        if cls.instance is None or cls.instance.proc.poll() is not None:
            cls.instance = cls()
        return cls.instance

    def _reply(self, timeout: float) -> dict | None:
        import select
        import time

        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b'\n' not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(
                        'tests/tool_server.py ended unexpectedly (its errors are on this '
                        "process's stderr); MMWST_TEST_FRESH_TOOLS=1 runs the tools without it"
                    )
                self.pending += chunk
        line, _, self.pending = self.pending.partition(b'\n')
        return json.loads(line)

    def run(self, cmd: list[str], cwd: str, env: dict, timeout: float) -> tuple[int, str, str]:
        import signal
        import tempfile

        with tempfile.TemporaryDirectory(prefix='mmwst_tool_') as tmp:
            out, err = osp.join(tmp, 'stdout'), osp.join(tmp, 'stderr')
            request = dict(argv=cmd[1:], cwd=cwd, env=env, stdout=out, stderr=err)
            self.proc.stdin.write((json.dumps(request) + '\n').encode())
            self.proc.stdin.flush()
            started = self._reply(timeout)  # the first run waits for the server's imports
            if started is None:
                self.proc.kill()
                raise subprocess.TimeoutExpired(cmd, timeout)
            if 'error' in started:
                raise RuntimeError(f'tests/tool_server.py did not start {cmd}: {started["error"]}')
            ended = self._reply(timeout)
            if ended is None:
                os.kill(started['pid'], signal.SIGKILL)
                self._reply(timeout)
            stdout, stderr = (
                open(path, encoding='utf-8', errors='backslashreplace').read()
                for path in (out, err)
            )
        if ended is None:
            raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
        return os.waitstatus_to_exitcode(ended['status']), stdout, stderr


def run_tool(
    args: list[str], *, cwd: str, env: dict | None = None, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``args`` (a python tool path or a shell script, then arguments) and return
    what ``subprocess.run`` would. A python tool runs in a process forked from
    ``tests/tool_server.py``, which has the third-party libraries imported already, unless
    ``MMWST_TEST_FRESH_TOOLS=1`` asks for a new interpreter."""
    cmd = ['bash', *args] if args[0].endswith('.sh') else [sys.executable, *args]
    env = env or tool_env()
    if args[0].endswith('.py') and os.environ.get('MMWST_TEST_FRESH_TOOLS', '0') == '0':
        code, stdout, stderr = _ToolServer.get().run(cmd, cwd, env, timeout)
        proc = subprocess.CompletedProcess(cmd, code, stdout, stderr)
    else:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(cmd)} exited with {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n'
            f'--- stderr ---\n{proc.stderr[-6000:]}'
        )
    return proc


def tiny_digits_options(task_dir: str, epochs: int = 2, train_images: int = 96) -> list[str]:
    """--cfg-options that shrink the demo config to a few seconds of training."""
    data_root = os.path.dirname(task_dir)
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.dataset.indices={train_images}',
        'train_dataloader.batch_size=16',
        'test_dataloader.dataset.indices=64',
        'val_dataloader.dataset.indices=64',
        f'train_cfg.max_epochs={epochs}',
        'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'default_hooks.logger.interval=1',
    ]


def tiny_model_options(cfg) -> dict:
    """Shrink a config's ViT-B / Swin-B host to a tiny one (same tuners, head, recipe)."""
    backbone = cfg.model.backbone
    options: dict = {'model.backbone.pretrained': None}
    if 'Swin' in backbone.type:
        options['model.backbone.arch'] = dict(
            _delete_=True, embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]
        )
        options['model.backbone.pad_small_map'] = True
        options['model.head.in_channels'] = 128
    else:
        options['model.backbone.arch'] = dict(
            _delete_=True, embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128
        )
        if cfg.model.head.type == 'LinearClsHead':
            options['model.head.in_channels'] = 64
    return options


def untrained_detector_checkpoint(config: str, path: str) -> str:
    """Save the mmdet detector of ``config`` with its initial weights (torch seed 0) and
    the shapes' class names as a checkpoint at ``path``; return ``path``. For tools that
    need a checkpoint but whose tests check bookkeeping, not what training learns."""
    import torch
    from mmdet.apis import init_detector

    import mmwst  # noqa: F401

    torch.manual_seed(0)
    model = init_detector(config, None, device='cpu')
    meta = dict(dataset_meta=dict(classes=('circle', 'square', 'triangle')))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return path


def few_iterations_options(image_size: int = 64, images: int = 4, batch: int = 2) -> dict:
    """Data and schedule overrides: a few iterations, no workers, no checkpoints."""
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(image_size, image_size)),
        dict(type='PackInputs'),
    ]
    options = {
        'train_dataloader.dataset.indices': images,
        'train_dataloader.batch_size': batch,
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'val_dataloader.dataset.indices': images,
        'default_hooks.checkpoint.interval': 100,
        'default_hooks.checkpoint.save_last': False,
        'log_level': 'WARNING',
    }
    for loader in ('train', 'val', 'test'):
        options[f'{loader}_dataloader.dataset.pipeline'] = pipeline
        options[f'{loader}_dataloader.num_workers'] = 0
        options[f'{loader}_dataloader.persistent_workers'] = False
    return options
