"""Linear-probe a frozen ViT on VTAB-layout tasks: how much do its features know?

    python tools/linear_probe.py [--pretrained FILE | --random] [--root data/mini-vtab]
        [--tasks all|TASK ...] [--seed 0] [--json OUT.json] [--work-dir DIR]

For every task, the frozen backbone embeds the 1,000 training and the test images once
(the final-norm class token and the mean of the final-norm patch tokens, concatenated);
a multinomial logistic regression on standardised features picks its inverse
regularisation C in {0.01, 0.1, 1, 10} by training on ``train800`` and scoring on
``val200`` - the test split is never used to choose anything - and is then refitted on
all 1,000 images and scored on ``test``.

``--pretrained`` takes a file exported by tools/pretrain_backbone.py (its architecture
is read from the file) and defaults to the shipped backbone; ``--random`` probes that
architecture with freshly initialised weights (``--seed``) instead, the reference that
shows what pretraining added.

``--work-dir DIR`` also stores each task's result as ``DIR/<task>/result.json``, the
layout of a tools/vtab_sweep.py run without seeds, so that the probe becomes a row of a
sweep's board (``python tools/vtab_report.py runs SWEEP --extra NAME``). The probe is
deterministic given the backbone - nothing in it draws a random number - so one run per
task stands for every seed.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np

HERE = osp.dirname(osp.abspath(__file__))
C_GRID = (0.01, 0.1, 1.0, 10.0)


def read_split(task_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) uint8 RGB and labels (N,) of one list file."""
    from PIL import Image

    images, labels = [], []
    with open(osp.join(task_dir, f'{split}.txt')) as f:
        for line in f:
            if line.strip():
                rel, label = line.rsplit(maxsplit=1)
                with Image.open(osp.join(task_dir, rel)) as img:
                    images.append(np.asarray(img.convert('RGB')))
                labels.append(int(label))
    return np.stack(images), np.asarray(labels)


def build_backbone(pretrained: str | None, host: dict, seed: int = 0):
    """The frozen host: ``host`` arguments, weights from ``pretrained`` or random."""
    import torch

    from mmwst.models.backbones import TunedVisionTransformer

    torch.manual_seed(seed)
    model = TunedVisionTransformer(**host, out_type='raw', pretrained=pretrained)
    model.init_weights()
    return model.eval()


def embed(model, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
    """[cls, mean of patch tokens] after the final norm, (N, 2D) float64."""
    import torch

    feats = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2).float()
            tokens = model((x - 127.5) / 127.5)[0]  # (B, 1 + h*w, D)
            feats.append(torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1))
    return torch.cat(feats).double().numpy()


def fit_and_score(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> dict:
    """Choose C on train800 -> val200, refit on all 1,000, score the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def fit(x, y, c):
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x), y)
        return lambda z: clf.predict(scaler.transform(z))

    val_scores = {}
    for c in C_GRID:
        predict = fit(train_x[:800], train_y[:800], c)
        val_scores[c] = float((predict(train_x[800:]) == train_y[800:]).mean() * 100)
    best_c = max(C_GRID, key=lambda c: (val_scores[c], -c))
    predict = fit(train_x, train_y, best_c)
    test = float((predict(test_x) == test_y).mean() * 100)
    return dict(test=test, val=val_scores[best_c], C=best_c)


def probe(model, root: str, tasks: list[str]) -> dict[str, dict]:
    """Linear-probe ``model`` on each task under ``root``."""
    results = {}
    for task in tasks:
        start = time.time()
        task_dir = osp.join(root, task)
        train_x, train_y = read_split(task_dir, 'train800val200')
        test_x, test_y = read_split(task_dir, 'test')
        results[task] = fit_and_score(embed(model, train_x), train_y, embed(model, test_x), test_y)
        results[task]['seconds'] = time.time() - start
    return results


def write_runs(results: dict[str, dict], work_dir: str, label: str) -> None:
    """One ``<work_dir>/<task>/result.json`` per task, as a sweep's run writes it: the
    test accuracy as ``final`` (and ``best``: there are no epochs), the probe's own time,
    no trainable backbone parameter."""
    for task, r in results.items():
        task_dir = osp.join(work_dir, task)
        os.makedirs(task_dir, exist_ok=True)
        record = dict(
            final=r['test'],
            best=r['test'],
            val=r['val'],
            C=r['C'],
            seconds=round(r['seconds'], 1),
            trainable_without_head=0,
            label=label,
            deterministic=True,
        )
        with open(osp.join(task_dir, 'result.json'), 'w') as f:
            json.dump(record, f, indent=2)


def host_from_file(path: str) -> dict:
    """The architecture stored in an exported backbone's metadata."""
    from safetensors import safe_open

    with safe_open(path, framework='pt') as f:
        meta = f.metadata() or {}
    if 'host' not in meta:
        raise ValueError(
            f'{path} carries no host architecture in its metadata; probe files written by '
            'tools/pretrain_backbone.py'
        )
    return json.loads(meta['host'])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pretrained', help='exported backbone (default: the shipped one)')
    parser.add_argument(
        '--random', action='store_true', help="random weights of --pretrained's architecture"
    )
    parser.add_argument('--root', default='data/mini-vtab', help='folder of the task folders')
    parser.add_argument('--tasks', nargs='+', default=['all'])
    parser.add_argument('--seed', type=int, default=0, help='initialisation seed (--random)')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument(
        '--work-dir', help="store DIR/<task>/result.json per task (a sweep's layout)"
    )
    parser.add_argument(
        '--label',
        default='linear probe (logistic regression)',
        help='the row name --work-dir results carry onto a board',
    )
    args = parser.parse_args(argv)

    import mmwst  # noqa: F401
    from mmwst.datasets import MINI_VTAB_TASKS
    from mmwst.weights import shipped_vit

    pretrained = args.pretrained or shipped_vit()
    host = host_from_file(pretrained)
    tasks = list(MINI_VTAB_TASKS) if args.tasks == ['all'] else args.tasks
    for task in tasks:
        if not osp.isfile(osp.join(args.root, task, 'test.txt')):
            parser.error(
                f'task {task!r} not found under {args.root}; write the tasks with '
                f'python tools/data/make_mini_vtab.py --root {args.root}'
            )
    start = time.time()
    model = build_backbone(None if args.random else pretrained, host, args.seed)
    results = probe(model, args.root, tasks)
    if args.work_dir:
        write_runs(results, args.work_dir, args.label)
    mean = float(np.mean([r['test'] for r in results.values()]))
    label = f'random (seed {args.seed})' if args.random else pretrained
    for task, r in results.items():
        print(f'{task:>16}: test {r["test"]:5.1f}%  (val {r["val"]:5.1f}%, C={r["C"]})')
    print(f'{"mean":>16}: test {mean:5.1f}%  [{label}; {time.time() - start:.0f} s]')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(backbone=label, tasks=results, mean=mean), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
