"""What each stage of a cascade RoI head trains on and says, object by object.

    python tools/cascade_stages.py CONFIG CHECKPOINT [--train-images 60] [--seed 0]
        [--cfg-options key=value ...]

Two reports for an mmdet detector with an RPN and a cascade RoI head:

1. **Positive regions per object.** The first N images of the config's training set,
   through its training pipeline (augmentations included), go through the detector's
   training forward with the checkpoint's weights but no update: the RPN proposes, and
   each stage assigns and samples its regions as the config says. Per stage, the
   positive regions each object got - the smallest third of the objects (by mask pixels,
   else box area) against the rest - and how many objects got none. Two configs that
   differ in their sampler, run on one checkpoint, compare the samplers on the same
   proposals.
2. **Each stage on the true boxes.** Over the config's validation set, each stage's
   probability of an object's own class on its annotated box: per stage, the share of
   objects given less than 0.5. On the shapes data (``tools/data/make_shapes.py``) it is
   told apart for partly hidden and whole objects, as the annotations say.

The cascade's later stages see the regions the earlier stages regress to; here every
stage is asked about the same box, the annotated one, so a stage that gives an object's
true box to the background has not learnt that object.
"""

from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction


def _load(config: str, checkpoint: str, cfg_options: dict):
    from mmdet.apis import init_detector

    import mmwst  # noqa: F401  (registers mmwst's modules for the config)

    model = init_detector(config, checkpoint, device='cpu', cfg_options=cfg_options or None)
    head = getattr(model, 'roi_head', None)
    if not (getattr(model, 'with_rpn', False) and hasattr(head, 'num_stages')):
        raise SystemExit(f'{config}: needs a detector with an RPN and a cascade RoI head')
    return model


def _one_image_batch(model, item: dict, training: bool) -> dict:
    """One dataset item through the detector's data preprocessor, as a batch of one."""
    return model.data_preprocessor(
        dict(inputs=[item['inputs']], data_samples=[item['data_samples']]), training
    )


def _stages(head) -> str:
    return ' / '.join(str(stage) for stage in range(head.num_stages))


def _object_sizes(instances) -> list[float]:
    masks = getattr(instances, 'masks', None)
    if masks is not None and len(masks) == len(instances):
        return [float(area) for area in masks.areas]
    return instances.bboxes.areas.tolist()


def positives_per_object(model, num_images: int, seed: int = 0) -> list[str]:
    """Report 1: sample the first ``num_images`` training images' regions as training
    would, recording per stage how many positives each object gets."""
    import torch
    from mmdet.registry import DATASETS
    from mmengine.runner import set_random_seed

    set_random_seed(seed)
    dataset = DATASETS.build(model.cfg.train_dataloader.dataset)
    num_images = min(num_images, len(dataset))
    head = model.roi_head
    counts: list[list[tuple[float, int]]] = [[] for _ in range(head.num_stages)]
    sizes: list[float] = []
    samplers = list(head.bbox_sampler)

    def recording(stage, sample):
        def wrapped(*args, **kwargs):
            result = sample(*args, **kwargs)
            per_object = torch.bincount(result.pos_assigned_gt_inds, minlength=len(sizes))
            counts[stage].extend(zip(sizes, per_object.tolist()))
            return result

        return wrapped

    for stage, sampler in enumerate(samplers):
        sampler.sample = recording(stage, sampler.sample)
    objects = 0
    model.train()
    try:
        with torch.no_grad():
            for index in range(num_images):
                item = dataset[index]
                sizes[:] = _object_sizes(item['data_samples'].gt_instances)
                objects += len(sizes)
                batch = _one_image_batch(model, item, training=True)
                model.loss(batch['inputs'], batch['data_samples'])
    finally:
        model.eval()
        for sampler in samplers:
            del sampler.sample  # the class's own method again
    lines = [
        f'positive regions per object over {num_images} training images ({objects} objects, '
        f'{objects / max(num_images, 1):.2f} per image), stages {_stages(head)}:'
    ]
    if objects == 0:
        return lines + ['  no objects']
    by_size = [sorted(stage_counts) for stage_counts in counts]  # (size, positives)
    third = max(objects // 3, 1)
    bound = by_size[0][third - 1][0]
    for name, part in (
        (f'smallest third (<= {bound:.0f} px)', slice(0, third)),
        ('the rest', slice(third, None)),
    ):
        groups = [[c for _, c in stage_counts[part]] for stage_counts in by_size]
        if not groups[0]:
            continue
        each = ' / '.join(f'{sum(g) / len(g):.2f}' for g in groups)
        none = ' / '.join(str(sum(c == 0 for c in g)) for g in groups)
        lines.append(f'  {name}: {each} each; none for {none} of {len(groups[0])}')
    return lines


def true_box_verdicts(model) -> list[str]:
    """Report 2: each stage's probability of every validation object's class on its
    annotated box; the share below 0.5 per stage and group."""
    import torch
    from mmdet.registry import DATASETS
    from mmdet.structures.bbox import bbox2roi

    from mmwst.datasets.generation.shapes import CLASSES, partly_hidden

    dataset = DATASETS.build(model.cfg.val_dataloader.dataset)
    shapes = tuple(dataset.metainfo.get('classes', ())) == CLASSES
    head = model.roi_head
    low: dict[str, list[list[bool]]] = {}
    for index in range(len(dataset)):
        item = dataset[index]
        instances = item['data_samples'].gt_instances
        if len(instances) == 0:
            continue
        batch = _one_image_batch(model, item, training=False)
        with torch.no_grad():
            feats = model.extract_feat(batch['inputs'])
            rois = bbox2roi([instances.bboxes.tensor.float()])
            probs = [
                head._bbox_forward(stage, feats, rois)['cls_score'].softmax(-1)
                for stage in range(head.num_stages)
            ]
        labels = instances.labels
        if shapes:
            raw = [i for i in dataset.get_data_info(index)['instances'] if not i['ignore_flag']]
            groups = [
                'partly hidden' if partly_hidden(i['bbox_label'] + 1, i['mask'][0]) else 'whole'
                for i in raw
            ]
        else:
            groups = ['all'] * len(labels)
        for j, group in enumerate(groups):
            low.setdefault(group, []).append([bool(p[j, labels[j]] < 0.5) for p in probs])
    lines = [
        f'true boxes given their own class below 0.5 over {len(dataset)} validation images, '
        f'stages {_stages(head)}:'
    ]
    for group in sorted(low):
        rows = low[group]
        shares = ' / '.join(
            f'{100 * sum(r[s] for r in rows) / len(rows):.1f}%' for s in range(head.num_stages)
        )
        lines.append(f'  {group} ({len(rows)} objects): {shares}')
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--train-images', type=int, default=60, help='training images sampled (report 1)'
    )
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the augmentations and the samplers'
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            parser.error(f'no such file: {path}')
    if args.train_images < 1:
        parser.error(f'--train-images must be at least 1, got {args.train_images}')
    model = _load(args.config, args.checkpoint, args.cfg_options)
    for line in positives_per_object(model, args.train_images, args.seed):
        print(line, flush=True)
    for line in true_box_verdicts(model):
        print(line, flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
