"""Time the mission's detector and segmentor as they train: the whole model of a config.

``tools/benchmark.py`` times backbones under a linear head. This tool builds the whole
model of a config (Cascade Mask R-CNN with its FPN, RPN and three cascade stages; UperNet
with its auxiliary head), feeds it generated images of the config's training size with
generated boxes, masks or label maps, and times mmengine's own training step
(``model.train_step``: data preprocessing, forward, losses, backward and the optimizer
update through the config's optimizer wrapper, AdamW with its parameter groups). For
each model it reports the time per iteration (median over the timed ones, with their
spread), the peak memory on a GPU, the trainable parameters, and what the config's
schedule would take on ``--gpus`` GPUs at that speed (iterations x time: a lower bound,
with data loading and the gradient all-reduce hidden behind the computation).

    python tools/config_speed.py --suites coco ade20k --device cuda --amp bf16 \\
        --out work_dirs/config_speed

Suites (each model with random weights: the time does not depend on them):

- ``coco`` at 1024x1024: WST + HST
  through the ViT (``configs/wst_coco.py``), beside it
  (``configs/dense/beside-vit_coco.py``), LoRA through the simple feature pyramid
  (``configs/dense/lora_sfp_coco.py``) and full fine-tuning of that ViT;
- ``ade20k`` at 512x512 crops: the same four from ``configs/wst_ade20k.py``,
  ``configs/dense/beside-vit_ade20k.py`` and ``configs/dense/lora_sfp_ade20k.py``.

Batch and schedules: both recipes train at a total batch of 16 (``auto_scale_lr``'s
base), so each GPU of ``--gpus`` (8) takes 2 images per iteration, the size timed here;
COCO 3x is 36 epochs of the 118,287 train2017 images, ADE20K the config's 160k
iterations. Precision:
``--amp fp16`` (the default on a GPU) is ``tools/train.py --amp`` there, mmengine's
AmpOptimWrapper with dynamic loss scaling - mmcv's RoIAlign and NMS kernels have no
bf16 version, so a detector does not train under bf16 autocast with mmcv's own
operators; ``--amp bf16`` (the default on a CPU) runs the forward pass and the losses
under bf16 autocast, as ``tools/train.py --amp`` does on a CPU; ``--amp none`` trains in
float32, as the configs are written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

COCO_TRAIN_IMAGES = 118_287  # COCO train2017

#: suite -> (input size, [(name, config, full fine-tuning instead of the config's tuners)])
SUITES = {
    'coco': (
        1024,
        [
            ('WST + HST, through the ViT', 'configs/wst_coco.py', False),
            ('WST + HST, beside the ViT', 'configs/dense/beside-vit_coco.py', False),
            ('LoRA, simple feature pyramid', 'configs/dense/lora_sfp_coco.py', False),
            ('full fine-tuning, simple feature pyramid', 'configs/dense/lora_sfp_coco.py', True),
        ],
    ),
    'ade20k': (
        512,
        [
            ('WST + HST, through the ViT', 'configs/wst_ade20k.py', False),
            ('WST + HST, beside the ViT', 'configs/dense/beside-vit_ade20k.py', False),
            ('LoRA, simple feature pyramid', 'configs/dense/lora_sfp_ade20k.py', False),
            ('full fine-tuning, simple feature pyramid', 'configs/dense/lora_sfp_ade20k.py', True),
        ],
    ),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--suites', nargs='+', choices=sorted(SUITES), default=sorted(SUITES))
    parser.add_argument('--device', default='cuda', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--amp',
        default=None,
        choices=['none', 'fp16', 'bf16'],
        help="fp16: mmengine's AmpOptimWrapper with loss scaling (tools/train.py --amp on a "
        'GPU; the default there); bf16: autocast only (the default on a CPU); none: float32',
    )
    parser.add_argument(
        '--size', type=int, default=None, help="input side (default: each suite's: 1024 / 512)"
    )
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations')
    parser.add_argument('--objects', type=int, default=7, help='boxes per detection image')
    parser.add_argument(
        '--gpus',
        type=int,
        default=8,
        help='GPUs sharing the total batch of 16: sets the images per GPU timed (16 / GPUs) '
        'and the schedule estimate',
    )
    parser.add_argument('--only', nargs='+', default=None, help='models whose name has any')
    parser.add_argument('--out', default='work_dirs/config_speed')
    args = parser.parse_args(argv)
    for name in ('warmup', 'iters', 'objects', 'gpus'):
        if getattr(args, name) < (0 if name == 'warmup' else 1):
            parser.error(f'--{name} must be at least {0 if name == "warmup" else 1}')
    if args.size is not None and (args.size < 32 or args.size % 32):
        parser.error(f'--size must be a positive multiple of 32 (the pyramid), got {args.size}')
    if args.amp is None:
        args.amp = 'fp16' if args.device == 'cuda' else 'bf16'
    if args.amp == 'fp16' and args.device != 'cuda':
        parser.error('--amp fp16 trains with loss scaling on a GPU only; use bf16 or none')
    if args.device == 'cuda':
        import torch

        if not torch.cuda.is_available():
            parser.error('--device cuda: no CUDA device here; use --device cpu')
    return args


def load_config(path: str, full_finetune: bool, amp: str = 'none'):
    """The config with random weights (no checkpoint read), full fine-tuning of its ViT
    if asked, and fp16 mixed precision as ``tools/train.py --amp`` sets it on a GPU."""
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO, path))
    backbone = cfg.model.backbone
    backbone.pretrained = None
    if full_finetune:
        if backbone.type != 'mmwst.TunedVisionTransformer':
            raise ValueError(f'{path}: full fine-tuning replaces the tuners of a ViT config')
        backbone.tuners = [dict(type='mmwst.FullFineTune')]
    if amp == 'fp16':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    return cfg


def batch_per_gpu(cfg, gpus: int) -> int:
    """Images per GPU that make the recipe's total batch (``auto_scale_lr``'s base, 16
    for both mission configs) on ``gpus`` GPUs."""
    total = int(cfg.auto_scale_lr.base_batch_size)
    if total % gpus:
        raise ValueError(
            f'the recipe trains at a total batch of {total}, which {gpus} GPUs cannot share '
            f'evenly: pass --gpus with a divisor of {total}'
        )
    return total // gpus


def schedule_iterations(cfg, gpus: int) -> tuple[int, str]:
    """Iterations of the config's schedule on ``gpus`` GPUs, and how they were counted."""
    loop = cfg.train_cfg
    if loop.get('type') == 'IterBasedTrainLoop':
        return int(loop.max_iters), f'{loop.max_iters:,} iterations'
    dataset = cfg.train_dataloader.dataset
    epochs = int(loop.max_epochs) * int(dataset.get('times', 1))
    total = gpus * batch_per_gpu(cfg, gpus)
    iters = math.ceil(epochs * COCO_TRAIN_IMAGES / total)
    return iters, f'{epochs} epochs x {COCO_TRAIN_IMAGES:,} images / {total} per iteration'


def make_batch(cfg, size: int, objects: int, batch: int) -> dict:
    """One training batch of ``batch`` images, as the config's data loader packs it."""
    import torch

    if 'decode_head' in cfg.model:  # mmseg: images and label maps of the head's classes
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        classes = int(cfg.model.decode_head.num_classes)
        samples = []
        for _ in range(batch):
            meta = dict(img_shape=(size, size), ori_shape=(size, size))
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, size, size)))
            samples.append(sample)
        images = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(batch)]
        return dict(inputs=images, data_samples=samples)
    from mmdet.testing import demo_mm_inputs

    heads = cfg.model.roi_head.bbox_head
    classes = int((heads[0] if isinstance(heads, list) else heads).num_classes)
    return demo_mm_inputs(
        batch_size=batch,
        image_shapes=[(3, size, size)] * batch,
        num_items=[objects] * batch,
        num_classes=classes,
        with_mask=True,
    )


def time_model(name: str, path: str, full: bool, size: int, args) -> dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope

    cfg = load_config(path, full, args.amp)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(args.device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if args.amp == 'bf16':  # the forward and the losses under autocast, as AMP runs them
        optim_wrapper.optim_context = _autocast_context(optim_wrapper.optim_context, args.device)
    batch = batch_per_gpu(cfg, args.gpus)
    data = make_batch(cfg, size, args.objects, batch)
    cuda = args.device == 'cuda'

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times = []
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.iters):
        sync()
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    iters, counted = schedule_iterations(cfg, args.gpus)
    step = statistics.median(times)
    report = dict(
        name=name,
        config=path,
        full_finetune=full,
        size=size,
        batch_per_gpu=batch,
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
        step_s=step,
        step_spread=(max(times) - min(times)) / step,
        step_times_s=times,
        img_s=batch / step,
        peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        schedule_iters=iters,
        schedule=counted,
        gpus=args.gpus,
        schedule_hours=iters * step / 3600,
    )
    del model, optim_wrapper, data
    if cuda:
        torch.cuda.empty_cache()
    return report


def _autocast_context(context, device: str):
    """``optim_wrapper.optim_context`` with bf16 autocast around what it wraps (mmengine's
    train_step runs the data preprocessor, forward and losses inside it; the backward
    pass outside)."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def optim_context(model):
        with context(model), torch.autocast(device_type=device, dtype=torch.bfloat16):
            yield

    return optim_context


def table(rows: list[dict]) -> str:
    lines = [
        '| suite | model | size | batch / GPU | trainable | s / iter (spread) | vs full FT '
        '| peak memory (GiB) | vs full FT | schedule on GPUs (h) |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for row in rows:
        if 'error' in row:
            lines.append(f'| {row["suite"]} | {row["name"]} | failed: {row["error"]} |||||||')
            continue
        peak = '-' if row['peak_gib'] is None else f'{row["peak_gib"]:.2f}'
        peak_ratio = '-' if row.get('peak_vs_full') is None else f'{row["peak_vs_full"]:.2f}x'
        step_ratio = '-' if row.get('step_vs_full') is None else f'{row["step_vs_full"]:.2f}x'
        lines.append(
            f'| {row["suite"]} | {row["name"]} | {row["size"]} | {row["batch_per_gpu"]} '
            f'| {row["trainable"]:,} | {row["step_s"]:.3f} ({row["step_spread"]:.0%}) '
            f'| {step_ratio} | {peak} | {peak_ratio} '
            f'| {row["schedule_hours"]:.1f} on {row["gpus"]} ({row["schedule_iters"]:,} it) |'
        )
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from mmengine.logging import MMLogger

    import mmwst  # noqa: F401  (registers mmwst's modules)

    if args.device == 'cpu':
        torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    MMLogger.get_instance('config_speed', log_level='WARNING')  # no init_weights reports
    rows = []
    for suite in args.suites:
        default_size, models = SUITES[suite]
        size = args.size or default_size
        suite_rows = []
        for name, path, full in models:
            if args.only and not any(s in name for s in args.only):
                continue
            print(f'[config speed] {suite}: {name} ({path}) at {size}', flush=True)
            try:
                row = time_model(name, path, full, size, args)
            except Exception as error:  # one model failing leaves the others measured
                row = dict(name=name, config=path, error=f'{type(error).__name__}: {error}')
                print(f'[config speed]   failed: {row["error"]}', flush=True)
            row['suite'] = suite
            suite_rows.append(row)
            if 'error' not in row:
                print(
                    f'[config speed]   {row["step_s"]:.3f} s / iter, peak '
                    f'{row["peak_gib"] if row["peak_gib"] is None else round(row["peak_gib"], 2)}'
                    ' GiB',
                    flush=True,
                )
        full = [r for r in suite_rows if r.get('full_finetune') and 'error' not in r]
        for row in suite_rows:
            if full and 'error' not in row:
                row['step_vs_full'] = row['step_s'] / full[0]['step_s']
                if row['peak_gib'] is not None:
                    row['peak_vs_full'] = row['peak_gib'] / full[0]['peak_gib']
        rows += suite_rows
        with open(osp.join(args.out, 'config_speed.json'), 'w') as f:
            json.dump(dict(device=_device_name(args.device), amp=args.amp, rows=rows), f, indent=1)
        with open(osp.join(args.out, 'config_speed.md'), 'w') as f:
            f.write(table(rows))
    print(table(rows))
    return 1 if any('error' in r for r in rows) else 0


def _device_name(device: str) -> str:
    import platform

    import torch

    if device == 'cuda':
        return torch.cuda.get_device_name()
    return platform.processor() or platform.machine()


if __name__ == '__main__':
    sys.exit(main())
