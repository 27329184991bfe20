"""Write scikit-learn's handwritten digits as a VTAB-1k-layout task (no download).

    python tools/data/make_digits_vtab.py [--root data/vtab-1k] [--size 32] [--seed 0]

Produces <root>/digits/{images/, train800.txt, val200.txt, train800val200.txt, test.txt}:
1,000 training images and 797 test images.
"""
import argparse

from mmwst.datasets.generation.digits import write_digits_vtab


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/vtab-1k', help='VTAB-1k root folder')
    parser.add_argument('--task', default='digits', help='task folder name')
    parser.add_argument('--size', type=int, default=32, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split')
    parser.add_argument('--overwrite', action='store_true', help='rewrite existing files')
    args = parser.parse_args(argv)
    path = write_digits_vtab(args.root, args.task, args.size, args.seed, args.overwrite)
    print(f'digits task ready in {path}')


if __name__ == '__main__':
    main()
