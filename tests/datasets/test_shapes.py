"""The procedurally generated shapes task: determinism, consistency and loaders."""

import importlib.util
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from mmwst.datasets.generation.shapes import shapes_metainfo, write_shapes_dataset

SMALL = dict(num_train=8, num_val=4, image_size=64, seed=0)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    return write_shapes_dataset(str(tmp_path_factory.mktemp('shapes')), **SMALL)


def _files(info):
    """Every generated file, relative to the root, with its bytes."""
    root = info['root']
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def _tight_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_same_seed_same_bytes_other_seed_differs(shapes, tmp_path):
    again = write_shapes_dataset(str(tmp_path / 'again'), **SMALL)
    first, second = _files(shapes), _files(again)
    assert len(first) == 1 + 2 + 2 * (8 + 4) and first == second
    other = write_shapes_dataset(str(tmp_path / 'other'), **dict(SMALL, seed=1))
    third = _files(other)
    assert third.keys() == first.keys()
    for name in ('annotations/instances_train.json', 'train/000000.png', 'seg/val/000003.png'):
        assert third[name] != first[name]


def test_layout_and_counts(shapes):
    assert not shapes['skipped'] and shapes['image_size'] == (64, 64)
    for split, count in (('train', 8), ('val', 4)):
        assert shapes[f'num_{split}'] == count
        assert shapes[f'{split}_ann_file'].endswith(f'annotations/instances_{split}.json')
        images = sorted(os.listdir(shapes[f'{split}_img_dir']))
        assert images == sorted(os.listdir(shapes[f'{split}_seg_dir']))
        assert images == [f'{i:06d}.png' for i in range(count)]
        image = Image.open(os.path.join(shapes[f'{split}_img_dir'], images[0]))
        label = Image.open(os.path.join(shapes[f'{split}_seg_dir'], images[0]))
        assert image.mode == 'RGB' and label.mode == 'L' and image.size == label.size == (64, 64)
        with open(shapes[f'{split}_ann_file']) as f:
            coco = json.load(f)
        assert len(coco['images']) == count
        assert len(coco['annotations']) == shapes[f'num_{split}_objects'] >= count
        assert [(c['id'], c['name']) for c in coco['categories']] == [
            (1, 'circle'),
            (2, 'square'),
            (3, 'triangle'),
        ]


@pytest.mark.parametrize('split', ['train', 'val'])
def test_instances_agree_with_label_maps(shapes, split):
    from pycocotools.coco import COCO

    coco = COCO(shapes[f'{split}_ann_file'])
    for image_id in coco.getImgIds():
        image_info = coco.loadImgs(image_id)[0]
        label = np.array(
            Image.open(os.path.join(shapes[f'{split}_seg_dir'], image_info['file_name']))
        )
        assert label.shape == (image_info['height'], image_info['width'])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert anns and set(np.unique(label)) == {0} | {a['category_id'] for a in anns}
        for ann in anns:
            assert ann['iscrowd'] == 0 and ann['category_id'] in (1, 2, 3)
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and x + w <= label.shape[1] and y + h <= label.shape[0]
            mask = coco.annToMask(ann).astype(bool)
            # the polygon covers pixels of its own class only (up to the rasterised border)
            assert (label[mask] == ann['category_id']).mean() > 0.9
            mask_box = _tight_box(mask)
            assert np.abs(np.subtract(mask_box, ann['bbox'])).max() <= 1
            if sum(a['category_id'] == ann['category_id'] for a in anns) == 1:
                visible = label == ann['category_id']
                assert (mask & visible).sum() / (mask | visible).sum() > 0.9
                assert ann['area'] == visible.sum()
                assert ann['bbox'] == _tight_box(visible)


def test_non_square_images(tmp_path):
    info = write_shapes_dataset(str(tmp_path), num_train=3, num_val=2, image_size=(48, 80))
    assert info['image_size'] == (48, 80)
    with open(info['val_ann_file']) as f:
        coco = json.load(f)
    assert {(i['height'], i['width']) for i in coco['images']} == {(48, 80)}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert x + w <= 80 and y + h <= 48
    assert Image.open(os.path.join(info['train_img_dir'], '000002.png')).size == (80, 48)
    label = np.array(Image.open(os.path.join(info['val_seg_dir'], '000001.png')))
    assert label.shape == (48, 80) and label.dtype == np.uint8


def test_mmdet_reads_it(shapes):
    import mmdet.datasets  # noqa: F401 - registers CocoDataset
    from mmdet.registry import DATASETS

    det = DATASETS.build(
        dict(
            type='mmdet.CocoDataset',
            data_root=shapes['root'],
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='val/'),
            metainfo=shapes_metainfo()['det'],
            pipeline=[],
        )
    )
    assert len(det) == 4 and det.metainfo['classes'] == ('circle', 'square', 'triangle')
    instances = sum(len(det.get_data_info(i)['instances']) for i in range(len(det)))
    assert instances == shapes['num_val_objects']
    first = det.get_data_info(0)
    assert first['img_path'].endswith(os.path.join('val', '000000.png'))
    assert all(0 <= inst['bbox_label'] < 3 and inst['mask'] for inst in first['instances'])


def test_mmseg_reads_it(shapes):
    try:
        import mmseg.datasets  # noqa: F401 - registers BaseSegDataset
    except ImportError as err:  # mmseg.utils imports ftfy and regex at import time
        pytest.skip(f'mmseg.datasets cannot be imported here: {err}')
    from mmseg.registry import DATASETS

    seg = DATASETS.build(
        dict(
            type='mmseg.BaseSegDataset',
            data_root=shapes['root'],
            data_prefix=dict(img_path='train', seg_map_path='seg/train'),
            img_suffix='.png',
            seg_map_suffix='.png',
            reduce_zero_label=False,
            metainfo=shapes_metainfo()['seg'],
            pipeline=[],
        )
    )
    assert len(seg) == 8 and seg.metainfo['classes'][0] == 'background'
    item = seg.get_data_info(3)
    assert item['img_path'].endswith(os.path.join('train', '000003.png'))
    assert item['seg_map_path'].endswith(os.path.join('seg', 'train', '000003.png'))


def test_regeneration_is_skipped_when_unchanged(tmp_path):
    root = str(tmp_path)
    args = dict(num_train=4, num_val=2, image_size=48)
    first = write_shapes_dataset(root, **args)
    image = os.path.join(first['train_img_dir'], '000000.png')
    stamp = os.stat(image).st_mtime_ns
    os.utime(image, ns=(stamp - 10**9, stamp - 10**9))  # any rewrite would move it forward
    again = write_shapes_dataset(root, **args)
    assert again['skipped'] and again['num_train_objects'] == first['num_train_objects']
    assert os.stat(image).st_mtime_ns == stamp - 10**9
    forced = write_shapes_dataset(root, **args, overwrite=True)
    assert not forced['skipped'] and os.stat(image).st_mtime_ns != stamp - 10**9
    # other arguments regenerate and leave no stale images behind
    fewer = write_shapes_dataset(root, **dict(args, num_train=2))
    assert not fewer['skipped'] and len(os.listdir(fewer['train_img_dir'])) == 2
    assert len(os.listdir(fewer['train_seg_dir'])) == 2
    with open(fewer['meta_file']) as f:
        assert json.load(f)['args']['num_train'] == 2
    # a missing file regenerates too
    os.remove(os.path.join(fewer['val_seg_dir'], '000001.png'))
    assert not write_shapes_dataset(root, **dict(args, num_train=2))['skipped']


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(image_size=16), 'image sides must be at least 32 pixels, got 16'),
        (dict(image_size=(64,)), 'image_size must be an int or a (height, width) pair'),
        (dict(num_train=0), 'num_train must be an integer >= 1, got 0'),
        (dict(max_objects=0), 'max_objects must be an integer >= 1, got 0'),
        (dict(seed=-1), 'seed must be an integer >= 0, got -1'),
    ],
)
def test_bad_arguments_say_what_is_wrong(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_shapes_dataset(str(tmp_path), **dict(dict(num_train=2, num_val=1), **kwargs))
    assert not os.listdir(tmp_path)


def test_root_that_is_a_file(tmp_path):
    path = tmp_path / 'file'
    path.write_text('')
    with pytest.raises(ValueError, match='root must be a folder'):
        write_shapes_dataset(str(path), num_train=1, num_val=1)


def test_metainfo_for_both_libraries():
    meta = shapes_metainfo()
    assert meta['det']['classes'] == ('circle', 'square', 'triangle')
    assert meta['seg']['classes'] == ('background', 'circle', 'square', 'triangle')
    assert len(meta['det']['palette']) == 3 and len(meta['seg']['palette']) == 4
    assert meta['seg']['palette'][0] == [0, 0, 0]


def test_command_line_tool(tmp_path, capsys):
    tool = os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'data', 'make_shapes.py')
    spec = importlib.util.spec_from_file_location('make_shapes', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = module.main
    root = str(tmp_path / 'cli')
    main(['--root', root, '--num-train', '2', '--num-val', '1', '--size', '40x56'])
    out = capsys.readouterr().out
    assert 'written' in out and '40x56 images' in out and 'instances_train.json' in out
    assert Image.open(os.path.join(root, 'val', '000000.png')).size == (56, 40)
    main(['--root', root, '--num-train', '2', '--num-val', '1', '--size', '40x56'])
    assert 'already up to date' in capsys.readouterr().out


def test_two_writers_of_one_folder_take_turns(tmp_path, monkeypatch):
    """Two demos started together used to delete each other's files while both
    generated the same folder; the second writer now waits for the first (and then
    finds the data set complete). Each writer, once inside, waits for the other to come
    in too: with the lock it never does, so the two never overlap."""
    import threading

    from mmwst.datasets.generation import shapes

    generate, inside, events = shapes._generate, threading.Event(), []

    def tracked(paths, args):
        events.append('enter')
        if inside.is_set():
            events.append('overlap')
        inside.set()
        inside.wait(timeout=1.0)  # time for the other writer to come in, if it can
        counts = generate(paths, args)
        inside.clear()
        events.append('exit')
        return counts

    monkeypatch.setattr(shapes, '_generate', tracked)
    results = []
    writers = [
        threading.Thread(
            target=lambda: results.append(
                shapes.write_shapes_dataset(str(tmp_path), num_train=3, num_val=2)
            )
        )
        for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert events == ['enter', 'exit'] and sorted(r['skipped'] for r in results) == [False, True]
