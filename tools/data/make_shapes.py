"""Write the procedurally generated shapes task for mmdet and mmseg (no download).

    python tools/data/make_shapes.py [--root data/shapes] [--num-train 200] [--num-val 50]
        [--size 128 | --size 96x160] [--seed 0] [--max-objects 3] [--overwrite]

Produces <root>/{meta.json, annotations/instances_{train,val}.json, train/, val/,
seg/train/, seg/val/}: RGB images with COCO instance annotations (circle, square,
triangle) and uint8 label maps (0 background, 1-3 the shapes) of the same scenes.
"""

import argparse

from mmwst.datasets.generation.shapes import write_shapes_dataset


def image_size(text: str):
    """Parse ``'128'`` (a square side) or ``'96x160'`` (height x width)."""
    parts = text.lower().split('x')
    if len(parts) in (1, 2) and all(p.strip().isdigit() for p in parts):
        sides = [int(p) for p in parts]
        return sides[0] if len(sides) == 1 else (sides[0], sides[1])
    raise argparse.ArgumentTypeError(
        f'expected SIDE or HEIGHTxWIDTH (e.g. 128 or 96x160), got {text!r}'
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/shapes', help='output folder')
    parser.add_argument('--num-train', type=int, default=200, help='training images')
    parser.add_argument('--num-val', type=int, default=50, help='validation images')
    parser.add_argument(
        '--size', type=image_size, default=128, help='image side, or HEIGHTxWIDTH (e.g. 96x160)'
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the scenes')
    parser.add_argument('--max-objects', type=int, default=3, help='most objects per image')
    parser.add_argument('--overwrite', action='store_true', help='rewrite up-to-date files')
    args = parser.parse_args(argv)
    info = write_shapes_dataset(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=args.size,
        seed=args.seed,
        max_objects=args.max_objects,
        overwrite=args.overwrite,
    )
    height, width = info['image_size']
    state = 'already up to date' if info['skipped'] else 'written'
    print(f'shapes task {state} in {info["root"]} ({height}x{width} images)')
    for split in ('train', 'val'):
        print(
            f'  {split}: {info[f"num_{split}"]} images in {info[f"{split}_img_dir"]}, '
            f'{info[f"num_{split}_objects"]} objects in {info[f"{split}_ann_file"]}, '
            f'label maps in {info[f"{split}_seg_dir"]}'
        )


if __name__ == '__main__':
    main()
