"""The end-to-end dense-prediction demo on generated data: data, train, evaluate, show.

    python tools/demo_dense.py [--work-dir work_dirs/demo] [--data-root data/shapes]
        [--only det|seg] [--det-config ...] [--seg-config ...]
        [--num-train 1000] [--num-val 50] [--image-size 128] [--seed 0]
        [--jobs 2] [--threads N] [--det-options k=v ...] [--seg-options k=v ...]

1. Writes the procedural shapes dataset (COCO instances with masks + semantic maps,
   deterministic from a seed) if it is missing.
2. Trains Cascade Mask R-CNN and UperNet on the dense backbone (the shipped frozen tiny
   ViT with WST's branch and HST's side network: the mixed pyramid, through the ViT,
   feeds the detector, the side network's four stages, beside the ViT, the
   segmentor), each with tools/train.py (an interrupted run resumes from its last
   checkpoint; a finished one is not trained again).
   With ``--jobs 2`` (the default) the two train at the same time, the cores shared out
   between them.
3. Evaluates with the real COCO metric (bbox / segm mAP) and mIoU (tools/test.py); the
   trainings skip their own final validation, which would evaluate the same images.
4. Saves a picture of predictions on validation images for each and prints a summary
   (also written to <work-dir>/summary.json).

This is the main job of ``bash tools/run_demo.sh``.
``--det-options`` / ``--seg-options`` pass config overrides (``key=value``) to the
training, testing and drawing of one task, e.g. ``--det-options train_cfg.max_epochs=20``.
"""

import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
TASKS = {
    'det': dict(
        name='Cascade Mask R-CNN',
        config='configs/demo/shapes_cascade_mask_rcnn.py',
        metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'),
        draw=['--score-thr', '0.5'],
    ),
    'seg': dict(
        name='UperNet', config='configs/demo/shapes_upernet.py', metrics=('mIoU', 'aAcc'), draw=[]
    ),
}


# mmengine's training log line: "Epoch(train)  [3][10/25]  ... eta: 0:02:41 ... loss: 1.2345"
# (epoch-based loops) or "Iter(train) [ 60/250] ..." (iteration-based loops)
_TRAIN_LINE = re.compile(
    r'(?P<loop>Epoch|Iter)\(train\)\s*(?:\[\s*(?P<epoch>\d+)\])?\[\s*(?P<it>\d+)/(?P<of>\d+)\]'
    r'.*?eta: (?P<eta>[\d:]+(?: day[s]?, [\d:]+)?).*?\bloss: (?P<loss>[-\d.e+naif]+)'
)
_PRINT = threading.Lock()
NO_VAL = f'train_cfg.val_begin={10**9}'
# glibc's allocator hands every freed block above its threshold back to the system, and a
# training step frees and takes back the same large activations: each is then paged in
# and zeroed again by the kernel (millions of page faults per run). Keeping them in the
# process (blocks up to 32 MiB from the heap, the heap never trimmed) took the demo's
# page faults from 21 to 2 million and the segmentor's step from 0.475 to 0.43 s on the
# demo's 2-core machine, with the same figures; other C libraries ignore it.
MALLOC_ENV = dict(
    MALLOC_MMAP_THRESHOLD_=str(32 << 20),
    MALLOC_TRIM_THRESHOLD_=str(4 << 30),
    MALLOC_TOP_PAD_=str(256 << 20),
)


def say(line: str) -> None:
    """Print one whole line (several tasks report from their own threads)."""
    with _PRINT:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()


def progress_line(line: str) -> str | None:
    """What one line of a training log says about progress, or None: the epoch and
    iteration, the loss and the time left, e.g. ``epoch 3, iter 10/25, loss 1.234,
    about 2.7 min left``."""
    found = _TRAIN_LINE.search(line)
    if found is None:
        return None
    where = f'iter {found["it"]}/{found["of"]}'
    if found['epoch'] is not None:
        where = f'epoch {found["epoch"]}, {where}'
    return f'{where}, loss {found["loss"]}, about {_minutes(found["eta"])} left'


def _minutes(eta: str) -> str:
    days = 0
    if 'day' in eta:
        head, eta = eta.split(',', 1)
        days = int(head.split()[0])
    hours, minutes, seconds = (int(part) for part in eta.strip().split(':'))
    total = days * 1440 + hours * 60 + minutes + seconds / 60
    return f'{total:.1f} min'


def _run(tool: str, args: list[str], log: str, env: dict, label: str) -> None:
    """Run ``tools/<tool>`` with this interpreter, appending its output to ``log``; while
    it trains, print a line ``[demo] <label>: epoch ..., loss ..., about ... left`` for
    each new progress line of its log."""
    cmd = [sys.executable, osp.join(HERE, tool), *args]
    say(f'[demo] $ {" ".join(cmd)}')
    with open(log, 'a') as f:
        start = f.tell()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    with open(log, errors='replace') as reader:
        reader.seek(start)
        pending = ''
        while True:
            finished = proc.poll() is not None
            pending += reader.read()
            *lines, pending = pending.split('\n')
            for line in lines:
                news = progress_line(line)
                if news is not None:
                    say(f'[demo] {label}: {news}')
            if finished:
                break
            time.sleep(1.0)
    if proc.returncode != 0:
        with open(log) as f:
            tail = f.read()[-4000:]
        sys.exit(f'[demo] command failed (log: {log}):\n{tail}')


def _cores() -> int:
    """The cores this process may use (its affinity mask, where the system has one)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--only', choices=sorted(TASKS), help='run one of the two tasks')
    parser.add_argument('--det-config', default=TASKS['det']['config'])
    parser.add_argument('--seg-config', default=TASKS['seg']['config'])
    parser.add_argument('--num-train', type=int, default=1000, help='generated training images')
    parser.add_argument('--num-val', type=int, default=50, help='generated validation images')
    parser.add_argument(
        '--image-size',
        type=int,
        default=128,
        help='side of the generated images (the configs expect 128; pass matching options)',
    )
    parser.add_argument(
        '--seed', type=int, default=0, help='training seed of both models (the data is fixed)'
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='tasks trained at once, the cores shared out between them (1: one after the '
        'other, each with every core)',
    )
    parser.add_argument(
        '--threads',
        type=int,
        help='threads of each training (default: the cores shared out between the jobs); '
        'the thread count changes the order of floating-point sums, hence the figures',
    )
    parser.add_argument('--det-options', nargs='+', default=[], metavar='KEY=VALUE')
    parser.add_argument('--seg-options', nargs='+', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    for option in args.det_options + args.seg_options:
        if '=' not in option:
            parser.error(f'config overrides are KEY=VALUE, got {option!r}')

    start = time.time()
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    data = write_shapes_dataset(
        args.data_root, num_train=args.num_train, num_val=args.num_val, image_size=args.image_size
    )
    print(
        f'[demo] data: {args.data_root} ({data["num_train"]} training and '
        f'{data["num_val"]} validation images)',
        flush=True,
    )
    os.makedirs(args.work_dir, exist_ok=True)
    configs = dict(det=args.det_config, seg=args.seg_config)
    seed = [f'randomness.seed={args.seed}']
    overrides = dict(det=seed + args.det_options, seg=seed + args.seg_options)
    tasks = [args.only] if args.only else ['det', 'seg']
    jobs = min(args.jobs, len(tasks))
    # the cores are shared out: two small trainings side by side, one thread each on 2
    # cores, finish sooner than one after the other with two threads each
    threads = args.threads or max(1, _cores() // jobs)
    env = dict(
        os.environ,
        SHAPES_ROOT=osp.abspath(args.data_root),  # read by the configs
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        **MALLOC_ENV,
    )

    def run_task(task: str) -> dict:
        config = configs[task]
        options = ['--cfg-options', *overrides[task]]
        work_dir = osp.join(args.work_dir, task)
        log = osp.join(args.work_dir, f'{task}.log')
        t0 = time.time()
        # the test below evaluates the validation images once: the training skips its own
        # evaluation of the same images at its end (mmengine's loops always validate
        # after the last epoch or iteration, unless the first validation comes later);
        # an option of the user's comes after and wins
        train_options = ['--cfg-options', NO_VAL, *overrides[task]]
        train_args = [config, '--work-dir', work_dir, '--resume', 'auto', *train_options]
        _run('train.py', train_args, log, env, f'{task} training')
        metrics_file = osp.join(work_dir, 'metrics.json')
        checkpoint = _last_checkpoint(work_dir)
        test_args = [config, checkpoint, '--work-dir', work_dir, '--out', metrics_file]
        _run('test.py', [*test_args, *options], log, env, f'{task} test')
        picture = osp.join(args.work_dir, f'{task}_predictions.png')
        draw = [config, checkpoint, picture, '--images', data['val_img_dir']]
        _run(
            'visualize_predictions.py',
            [*draw, *TASKS[task]['draw'], *options],
            log,
            env,
            f'{task} drawing',
        )
        with open(metrics_file) as f:
            metrics = json.load(f)
        return dict(
            metrics={k: metrics.get(k) for k in TASKS[task]['metrics']},
            minutes=(time.time() - t0) / 60,
            picture=picture,
            threads=threads,
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = {task: pool.submit(run_task, task) for task in tasks}
        summary = {task: result.result() for task, result in results.items()}

    say(f'\n[demo] finished in {(time.time() - start) / 60:.1f} min')
    for task, result in summary.items():
        name = TASKS[task]['name']
        values = ', '.join(
            f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
            for k, v in result['metrics'].items()
        )
        print(
            f'[demo] {name}: {values} ({result["minutes"]:.1f} min); '
            f'predictions: {result["picture"]}'
        )
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(dict(seed=args.seed, jobs=jobs, **summary), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
