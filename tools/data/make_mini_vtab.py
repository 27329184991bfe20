"""Write the mini-VTAB suite: seven generated tasks in the VTAB-1k layout (no download).

    python tools/data/make_mini_vtab.py [--root data/mini-vtab] [--tasks ...] [--size 32]
        [--seed 0] [--num-test 500] [--overwrite]

Produces <root>/<task>/{images/, train800.txt, val200.txt, train800val200.txt, test.txt}
for digits, land_cover, cell_patches, dsprites_loc, dsprites_ori, clevr_count and
clevr_dist (1,000 training images each; digits keeps its 797 test images), and
<root>/mini_vtab.json. Read a task with ``VTAB1k('<root>', '<task>')``.
"""

import argparse
import json
import os.path as osp
import time

from mmwst.datasets.generation.mini_vtab import MINI_VTAB_GROUPS, MINI_VTAB_TASKS, SPLITS, write_mini_vtab


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/mini-vtab', help='suite root folder')
    parser.add_argument(
        '--tasks',
        nargs='+',
        default=None,
        choices=list(MINI_VTAB_TASKS),
        metavar='TASK',
        help=f'tasks to write (default: all of {", ".join(MINI_VTAB_TASKS)})',
    )
    parser.add_argument('--size', type=int, default=32, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='seed of every random choice')
    parser.add_argument('--num-test', type=int, default=500, help='test images per generated task')
    parser.add_argument('--overwrite', action='store_true', help='rewrite existing tasks')
    args = parser.parse_args(argv)
    tasks = args.tasks or list(MINI_VTAB_TASKS)
    group_of = {t: g for g, names in MINI_VTAB_GROUPS.items() for t in names}
    for task in tasks:
        start = time.time()
        lists = [osp.join(args.root, task, f'{split}.txt') for split in SPLITS]
        kept = not args.overwrite and all(osp.isfile(path) for path in lists)
        (folder,) = write_mini_vtab(
            args.root,
            [task],
            size=args.size,
            seed=args.seed,
            num_test=args.num_test,
            overwrite=args.overwrite,
        )
        with open(osp.join(args.root, 'mini_vtab.json')) as f:
            splits = json.load(f)['tasks'][task]['splits']
        print(
            f'{task} ({group_of[task]}, {MINI_VTAB_TASKS[task]} classes) ready in {folder}'
            + (' (existing files kept)' if kept else f' [{time.time() - start:.1f}s]')
        )
        for split in ('train800val200', 'test'):
            count, histogram = splits[split]['count'], splits[split]['histogram']
            print(f'  {split}: {count} images, per class {histogram}')
    print(f'suite description in {args.root}/mini_vtab.json')


if __name__ == '__main__':
    main()
