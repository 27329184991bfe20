"""Draw a model's predictions on a few images into one PNG (mmdet or mmseg configs).

    python tools/visualize_predictions.py CONFIG CHECKPOINT OUT.png --images DIR
        [--num 4] [--score-thr 0.5] [--scale 3] [--cfg-options key=value ...]

Detection configs (mmdet scope) draw boxes with their class and score, and instance
masks, with mmdet's ``DetLocalVisualizer``; segmentation configs (mmseg scope) draw the
label map with mmseg's ``SegLocalVisualizer``. The first ``--num`` images of DIR (sorted)
are shown side by side: the input on top, the prediction below, each enlarged
``--scale`` times (nearest neighbour, so edges stay sharp and labels readable).
"""

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def _images(folder: str, num: int) -> list[str]:
    names = sorted(
        n for n in os.listdir(folder) if n.lower().endswith(('.png', '.jpg', '.jpeg', '.bmp'))
    )
    if not names:
        raise FileNotFoundError(f'no image in {folder}')
    return [osp.join(folder, n) for n in names[:num]]


def _enlarge(image, scale: int):
    """Nearest-neighbour enlargement of an (H, W, 3) array."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def _scaled_detections(result, scale: int):
    """Boxes and masks of a DetDataSample, ``scale`` times larger."""
    import torch.nn.functional as F

    pred = result.pred_instances
    pred.bboxes = pred.bboxes * scale
    if 'masks' in pred and len(pred.masks):
        masks = pred.masks[:, None].float()
        pred.masks = F.interpolate(masks, scale_factor=scale, mode='nearest')[:, 0].bool()
    elif 'masks' in pred:  # nothing detected: no masks, but of the enlarged image's size
        height, width = pred.masks.shape[-2:]
        pred.masks = pred.masks.new_zeros((0, height * scale, width * scale))
    result.set_metainfo(
        dict(
            img_shape=tuple(s * scale for s in result.img_shape),
            ori_shape=tuple(s * scale for s in result.ori_shape),
        )
    )
    return result


def _scaled_segmentation(result, scale: int):
    """The label map of a SegDataSample, ``scale`` times larger."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    data = result.pred_sem_seg.data  # (1, H, W)
    enlarged = data.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    return SegDataSample(pred_sem_seg=PixelData(data=enlarged))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='PNG file to write')
    parser.add_argument('--images', required=True, help='folder of images')
    parser.add_argument('--num', type=int, default=4)
    parser.add_argument(
        '--score-thr', type=float, default=0.5, help='draw detections scoring at least this'
    )
    parser.add_argument('--scale', type=int, default=3, help='enlargement of each panel')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error(f'--scale must be a positive integer, got {args.scale}')

    import mmcv
    import numpy as np

    import mmwst  # noqa: F401

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    inputs, panels = [], []
    if scope == 'mmseg':
        from mmseg.apis import inference_model, init_model
        from mmseg.visualization import SegLocalVisualizer

        model = init_model(cfg, args.checkpoint, device='cpu')
        visualizer = SegLocalVisualizer(name='mmwst_demo_seg', alpha=1.0)  # class colours only
        visualizer.dataset_meta = model.dataset_meta
        for path in _images(args.images, args.num):
            image = _enlarge(mmcv.imread(path, channel_order='rgb'), args.scale)
            result = _scaled_segmentation(inference_model(model, path), args.scale)
            visualizer.add_datasample('prediction', image, result, draw_gt=False, show=False)
            inputs.append(image)
            panels.append(visualizer.get_image())
    else:
        from mmdet.apis import inference_detector, init_detector
        from mmdet.visualization import DetLocalVisualizer

        model = init_detector(cfg, args.checkpoint, device='cpu')
        visualizer = DetLocalVisualizer(name='mmwst_demo_det')
        visualizer.dataset_meta = model.dataset_meta
        # mmdet shifts each mask's colour by numpy's global generator: seeded, one
        # checkpoint always gives the same picture
        np.random.seed(0)
        for path in _images(args.images, args.num):
            image = _enlarge(mmcv.imread(path, channel_order='rgb'), args.scale)
            result = _scaled_detections(inference_detector(model, path), args.scale)
            visualizer.add_datasample(
                'prediction',
                image,
                result,
                draw_gt=False,
                show=False,
                pred_score_thr=args.score_thr,
            )
            inputs.append(image)
            panels.append(visualizer.get_image())
    gap = 4 * args.scale

    def row(images):
        height = max(p.shape[0] for p in images)
        padded = [np.pad(p, ((0, height - p.shape[0]), (0, gap), (0, 0))) for p in images]
        return np.concatenate(padded, axis=1)

    top, bottom = row(inputs), row(panels)
    sheet = np.concatenate([top, np.zeros((gap, top.shape[1], 3), top.dtype), bottom], axis=0)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(sheet), args.out)
    print(f'wrote {args.out}: inputs (top) and predictions (bottom)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
