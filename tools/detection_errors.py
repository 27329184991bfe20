"""What a detector's picture would get wrong, counted over a whole image set.

    python tools/detection_errors.py CONFIG CHECKPOINT [--score-thr 0.5] [--iou-thr 0.5]
        [--out errors.json] [--cfg-options key=value ...]

A picture of predictions draws the detections scoring at least ``--score-thr``. Over
every image of the config's test set (its ``test_dataloader``: set ``SHAPES_ROOT`` to
score other generated shapes), this counts what such pictures would show wrong:

- **missed** objects: no drawn detection of the object's class overlaps its true box with
  IoU at least ``--iou-thr`` (per class as well);
- **false** detections: a drawn detection that overlaps no true box of its class with IoU
  at least ``--iou-thr`` - a wrong class, a box off the object, or one on the background.
  A second box on an object already found is not counted.

mAP averages over every score; these counts are what the threshold leaves. Any mmdet
detector whose test dataset lists its boxes (``instances`` with ``bbox``,
``bbox_label``); crowd or ignored boxes are skipped.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp

from mmengine.config import DictAction


def count_errors(detections, truths, score_thr: float, iou_thr: float) -> dict:
    """Missed objects and false detections of one image.

    ``detections``: (boxes N x 4 xyxy, scores N, labels N) tensors; ``truths``: (boxes
    M x 4, labels M). Returns ``missed`` (labels of the objects missed), ``false`` (labels
    of the false detections) and ``objects`` (M)."""
    import torch
    from mmdet.structures.bbox import bbox_overlaps

    boxes, scores, labels = detections
    drawn = scores >= score_thr
    boxes, labels = boxes[drawn], labels[drawn]
    true_boxes, true_labels = truths
    if len(true_boxes) and len(boxes):
        ious = bbox_overlaps(true_boxes.float(), boxes.float())  # M x N
        hits = (ious >= iou_thr) & (true_labels[:, None] == labels[None, :])
    else:
        hits = torch.zeros(len(true_boxes), len(boxes), dtype=torch.bool)
    return dict(
        objects=len(true_boxes),
        missed=true_labels[~hits.any(dim=1)].tolist(),
        false=labels[~hits.any(dim=0)].tolist(),
    )


def _truths(info: dict):
    import torch

    kept = [obj for obj in info.get('instances', []) if not obj.get('ignore_flag', 0)]
    boxes = torch.tensor([obj['bbox'] for obj in kept], dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor([obj['bbox_label'] for obj in kept], dtype=torch.long)
    return boxes, labels


def detection_errors(config: str, checkpoint: str, score_thr: float, iou_thr: float, **cfg):
    """Counts over the config's test set: totals, per class, and the images with errors."""
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    import mmwst  # noqa: F401  (registers mmwst's modules for the config)

    model = init_detector(config, checkpoint, device='cpu', cfg_options=cfg or None)
    init_default_scope(model.cfg.get('default_scope', 'mmdet'))
    dataset = DATASETS.build(model.cfg.test_dataloader.dataset)
    classes = [str(c) for c in dataset.metainfo['classes']]
    per_class = {name: dict(objects=0, missed=0, false=0) for name in classes}
    images = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        found = inference_detector(model, info['img_path']).pred_instances
        truths = _truths(info)
        counts = count_errors(
            (found.bboxes, found.scores, found.labels), truths, score_thr, iou_thr
        )
        for label in truths[1].tolist():
            per_class[classes[label]]['objects'] += 1
        for key in ('missed', 'false'):
            for label in counts[key]:
                per_class[classes[label]][key] += 1
        if counts['missed'] or counts['false']:
            images.append(
                dict(
                    image=osp.basename(info['img_path']),
                    missed=[classes[i] for i in counts['missed']],
                    false=[classes[i] for i in counts['false']],
                )
            )
    total = {key: sum(c[key] for c in per_class.values()) for key in ('objects', 'missed', 'false')}
    return dict(
        images=len(dataset),
        score_thr=score_thr,
        iou_thr=iou_thr,
        **total,
        per_class=per_class,
        images_with_errors=images,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--score-thr', type=float, default=0.5, help="the picture's threshold")
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU that finds an object')
    parser.add_argument('--out', help='JSON file for the counts and the images with errors')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            parser.error(f'no such file: {path}')
    if not 0.0 < args.iou_thr <= 1.0:
        parser.error(f'--iou-thr must be in (0, 1], got {args.iou_thr}')
    result = detection_errors(
        args.config, args.checkpoint, args.score_thr, args.iou_thr, **args.cfg_options
    )
    print(
        f'{result["images"]} images, {result["objects"]} objects, score >= '
        f'{args.score_thr}, IoU >= {args.iou_thr}: {result["missed"]} missed, '
        f'{result["false"]} false detections'
    )
    for name, counts in result['per_class'].items():
        print(
            f'  {name}: {counts["objects"]} objects, {counts["missed"]} missed, '
            f'{counts["false"]} false'
        )
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
