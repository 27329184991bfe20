"""Draw a model's predictions on a few images into one PNG (mmdet or mmseg configs).

    python tools/visualize_predictions.py CONFIG CHECKPOINT OUT.png --images DIR
        [--num 4] [--score-thr 0.3] [--cfg-options key=value ...]

Detection configs (mmdet scope) draw boxes and instance masks with mmdet's
``DetLocalVisualizer``; segmentation configs (mmseg scope) draw the label map with
mmseg's ``SegLocalVisualizer``. The first ``--num`` images of DIR (sorted) are shown
side by side.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='PNG file to write')
    parser.add_argument('--images', required=True, help='folder of images')
    parser.add_argument('--num', type=int, default=4)
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)

    import mmcv
    import numpy as np

    import mmwst  # noqa: F401

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    panels = []
    if scope == 'mmseg':
        from mmseg.apis import inference_model, init_model
        from mmseg.visualization import SegLocalVisualizer

        model = init_model(cfg, args.checkpoint, device='cpu')
        visualizer = SegLocalVisualizer(name='mmwst_demo_seg', alpha=0.6)
        visualizer.dataset_meta = model.dataset_meta
        for path in _images(args.images, args.num):
            image = mmcv.imread(path, channel_order='rgb')
            result = inference_model(model, path)
            visualizer.add_datasample('prediction', image, result, draw_gt=False, show=False)
            panels.append(visualizer.get_image())
    else:
        from mmdet.apis import inference_detector, init_detector
        from mmdet.visualization import DetLocalVisualizer

        model = init_detector(cfg, args.checkpoint, device='cpu')
        visualizer = DetLocalVisualizer(name='mmwst_demo_det')
        visualizer.dataset_meta = model.dataset_meta
        for path in _images(args.images, args.num):
            image = mmcv.imread(path, channel_order='rgb')
            result = inference_detector(model, path)
            visualizer.add_datasample(
                'prediction',
                image,
                result,
                draw_gt=False,
                show=False,
                pred_score_thr=args.score_thr,
            )
            panels.append(visualizer.get_image())
    height = max(p.shape[0] for p in panels)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0))) for p in panels]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(np.concatenate(padded, axis=1)), args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
