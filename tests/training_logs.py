"""What a training logged in its work dir: the scalars mmengine writes per run.

Every run of a training tool (mmwst's or an upstream one) writes
``<work_dir>/<timestamp>/vis_data/scalars.json``: one JSON object a line, the training
lines (loss, lr, ...) and, after each validation, that validation's metrics with the
epoch (or iteration) as ``step``. Evaluation in the tools runs at the thread count of
the environment, so a test that compares a tool's figures with these runs both at the
same one (``tests.helpers.tool_env``).
"""

from __future__ import annotations

import glob
import json
import os.path as osp


def logged_validations(work_dir, key: str) -> list[dict]:
    """The validations logged under ``work_dir`` that report ``key``, oldest first.

    All runs in the folder count (a killed run and its resumption each have their own
    timestamped folder; the timestamps sort in time order).
    """
    records = []
    pattern = osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            records += [r for r in map(json.loads, filter(str.strip, f)) if key in r]
    return records


def last_validation(work_dir, key: str) -> dict:
    """The last validation logged under ``work_dir`` that reports ``key``."""
    records = logged_validations(work_dir, key)
    if not records:
        found = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
        raise AssertionError(f'no validation with {key!r} logged under {work_dir} ({found})')
    return records[-1]


def write_scored_config(path, config: str) -> str:
    """Write to ``path`` a config that is ``config`` validated and tested by two metrics:
    the top-1 accuracy and the mean average precision of the class scores.

    A few dozen images of a barely trained classifier often leave the accuracy where an
    untrained one has it (one class predicted for all); the mAP of the scores moves with
    any change of the weights, so equal figures mean the same model.
    """
    with open(path, 'w') as f:
        f.write(
            f'_base_ = [{str(config)!r}]\n'
            "val_evaluator = [dict(type='Accuracy', topk=(1,)), dict(type='AveragePrecision')]\n"
            'test_evaluator = val_evaluator\n'
        )
    return str(path)


#: The figures of a config written by :func:`write_scored_config`.
SCORED_METRICS = ('accuracy/top1', 'multi-label/mAP')
