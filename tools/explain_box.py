"""Why a detector misses an object: what each part of a two-stage detector says about it.

    python tools/explain_box.py CONFIG CHECKPOINT IMAGE --box X1 Y1 X2 Y2
        [--top 3] [--cfg-options key=value ...]

For the object whose true box is ``--box`` (pixels of IMAGE), prints

1. the final detections that overlap it most (class, score, box, IoU with it);
2. the region proposals that overlap it most (objectness, box, IoU): whether the RPN
   offered the RoI head a region on the object at all;
3. the RoI head's verdict on two regions, stage by stage for a cascade - the best
   proposal and the true box itself: the class probabilities (background last, as mmdet
   orders them) and the box each stage regresses to, with its IoU.

If the proposals cover the object but the RoI head scores even its true box as
background, the miss is the RoI head's classification, not the proposals'. mmdet
detectors with an RPN and a (cascade) RoI head; the image goes through the config's
test pipeline, and boxes are read in the image's pixels.
"""

from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction


def _box(values) -> str:
    return '[' + ', '.join(f'{v:.0f}' for v in values) + ']'


def _stage_verdicts(model, feats, rois, true_box, classes, img_meta) -> list[str]:
    """Each stage's class probabilities for ``rois`` (one region) and the box it
    regresses to (mmdet's own ``regress_by_class``: the most probable class's box,
    clipped to the image), fed to the next stage as a cascade does."""
    import torch
    from mmdet.structures.bbox import bbox_overlaps

    head = model.roi_head
    cascade = hasattr(head, 'num_stages')
    lines = []
    for stage in range(head.num_stages if cascade else 1):
        if cascade:
            result = head._bbox_forward(stage, feats, rois)
            bbox_head = head.bbox_head[stage]
        else:
            result = head._bbox_forward(feats, rois)
            bbox_head = head.bbox_head
        probs = result['cls_score'].softmax(-1)
        label = probs[:, :-1].argmax(dim=1)
        boxes = bbox_head.regress_by_class(rois[:, 1:], label, result['bbox_pred'], img_meta)
        iou = bbox_overlaps(true_box, boxes)[0, 0].item()
        verdict = ', '.join(f'{n} {p:.3f}' for n, p in zip([*classes, 'background'], probs[0]))
        lines.append(
            f'  stage {stage}: region {_box(rois[0, 1:].tolist())} -> {verdict}; '
            f'regressed to {_box(boxes[0].tolist())} (IoU {iou:.2f})'
        )
        rois = torch.cat([rois[:, :1], boxes], dim=1)
    return lines


def explain(config: str, checkpoint: str, image: str, box: list[float], top: int = 3, **cfg):
    """The report's lines for the object with true box ``box`` in ``image``."""
    import torch
    from mmdet.apis import inference_detector, init_detector
    from mmdet.structures.bbox import bbox2roi, bbox_overlaps
    from mmdet.utils import get_test_pipeline_cfg
    from mmengine.dataset import Compose

    import mmwst  # noqa: F401  (registers mmwst's modules for the config)

    model = init_detector(config, checkpoint, device='cpu', cfg_options=cfg or None)
    if not (getattr(model, 'with_rpn', False) and getattr(model, 'with_roi_head', False)):
        raise SystemExit(f'{config}: needs a detector with an RPN and an RoI head')
    head = model.roi_head.bbox_head
    head = head[0] if isinstance(head, torch.nn.ModuleList) else head
    classes = (model.dataset_meta or {}).get('classes') or range(head.num_classes)
    classes = [str(name) for name in classes]
    true_box = torch.tensor([box], dtype=torch.float32)
    lines = []
    detections = inference_detector(model, image).pred_instances
    lines.append(f'detections overlapping {_box(box)} most:')
    ious = bbox_overlaps(true_box, detections.bboxes)[0]
    for i in ious.argsort(descending=True)[:top].tolist():
        lines.append(
            f'  {classes[detections.labels[i]]} {detections.scores[i]:.3f} '
            f'{_box(detections.bboxes[i].tolist())} IoU {ious[i]:.2f}'
        )
    # the RPN and the RoI head on the preprocessed image (boxes in its pixels)
    data = Compose(get_test_pipeline_cfg(model.cfg))(dict(img_path=image, img_id=0))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False
    )
    img_meta = batch['data_samples'][0].metainfo
    scale = img_meta.get('scale_factor', (1.0, 1.0))
    scale = true_box.new_tensor([scale[0], scale[1], scale[0], scale[1]])
    with torch.no_grad():
        feats = model.extract_feat(batch['inputs'])
        proposals = model.rpn_head.predict(feats, batch['data_samples'], rescale=False)[0]
        target = true_box * scale
        ious = bbox_overlaps(target, proposals.bboxes)[0]
        order = ious.argsort(descending=True)[:top].tolist()
        lines.append(f'proposals overlapping it most (of {len(proposals)}):')
        for i in order:
            lines.append(
                f'  objectness {proposals.scores[i]:.3f} '
                f'{_box((proposals.bboxes[i] / scale).tolist())} IoU {ious[i]:.2f}'
            )
        regions = [('the best proposal', proposals.bboxes[order[0]])] if order else []
        for name, region in [*regions, ('the true box', target[0])]:
            lines.append(f'the RoI head on {name}:')
            rois = bbox2roi([region[None]])
            lines += _stage_verdicts(model, feats, rois, target, classes, img_meta)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument(
        '--box', nargs=4, type=float, required=True, metavar=('X1', 'Y1', 'X2', 'Y2')
    )
    parser.add_argument('--top', type=int, default=3, help='detections and proposals listed')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    for path in (args.config, args.checkpoint, args.image):
        if not osp.isfile(path):
            parser.error(f'no such file: {path}')
    x1, y1, x2, y2 = args.box
    if not (x2 > x1 and y2 > y1):
        parser.error(f'--box is X1 Y1 X2 Y2 with X2 > X1 and Y2 > Y1, got {args.box}')
    if args.top < 1:
        parser.error(f'--top must be at least 1, got {args.top}')
    for line in explain(
        args.config, args.checkpoint, args.image, args.box, args.top, **args.cfg_options
    ):
        print(line)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
