"""VTAB-1k and FGVC datasets: layouts, aliases and errors that name the problem."""

import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from mmwst.datasets import FGVC, VTAB_GROUPS, VTAB_TASKS, VTAB1k, canonical_task
from tests.helpers import REPO


def _image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def _vtab_task(root, task='cifar', labels=(0, 5, 99)):
    folder = root / task
    for i in range(len(labels)):
        _image(str(folder / 'images' / f'{i}.png'))
    lines = ''.join(f'images/{i}.png {label}\n' for i, label in enumerate(labels))
    for split in ('train800', 'val200', 'train800val200', 'test'):
        (folder / f'{split}.txt').write_text(lines)
    return folder


def test_nineteen_tasks_in_three_groups():
    assert len(VTAB_TASKS) == 19 and sum(len(g) for g in VTAB_GROUPS.values()) == 19
    assert VTAB_GROUPS['specialized'] == (
        'patch_camelyon',
        'eurosat',
        'resisc45',
        'diabetic_retinopathy',
    )
    assert VTAB_TASKS['sun397'] == 397 and VTAB_TASKS['kitti'] == 4


def test_vtab_reads_lists_and_resolves_aliases(tmp_path):
    _vtab_task(tmp_path)
    dataset = VTAB1k(str(tmp_path), 'cifar100', split='test')
    assert dataset.task == 'cifar' and len(dataset) == 3
    assert [dataset.get_data_info(i)['gt_label'] for i in range(3)] == [0, 5, 99]
    assert len(dataset.metainfo['classes']) == 100
    assert canonical_task('Smallnorb-Azimuth') == 'smallnorb_azi'


@pytest.mark.parametrize(
    'problem, error, message',
    [
        ('task', ValueError, "unknown VTAB-1k task 'cifar10'"),
        ('root', FileNotFoundError, 'VTAB_ROOT=/path/to/vtab-1k'),
        ('list', FileNotFoundError, 'test.txt does not exist'),
        ('image', FileNotFoundError, '1.png does not exist'),
        ('label', ValueError, 'label 100 is outside [0, 100)'),
        ('line', ValueError, 'expected "<image path> <integer label>"'),
    ],
)
def test_vtab_errors_say_what_is_wrong(tmp_path, problem, error, message):
    folder = _vtab_task(tmp_path)
    task = 'cifar'
    if problem == 'task':
        task = 'cifar10'
    elif problem == 'root':
        task = 'dtd'
    elif problem == 'list':
        (folder / 'test.txt').unlink()
    elif problem == 'image':
        (folder / 'images' / '1.png').unlink()
    elif problem == 'label':
        (folder / 'test.txt').write_text('images/0.png 100\n')
    elif problem == 'line':
        (folder / 'test.txt').write_text('images/0.png\n')
    with pytest.raises(error, match=re.escape(message)):
        VTAB1k(str(tmp_path), task, split='test')


def test_vtab_custom_task_needs_num_classes(tmp_path):
    _vtab_task(tmp_path, task='mytask', labels=(0, 9))
    assert len(VTAB1k(str(tmp_path), 'mytask', num_classes=10)) == 2
    with pytest.raises(ValueError, match='unknown VTAB-1k task'):
        VTAB1k(str(tmp_path), 'mytask')
    _vtab_task(tmp_path, task='digits', labels=(0, 9))
    assert VTAB1k(str(tmp_path), 'digits').num_classes == 10  # the generated task


def _table(name: str) -> str:
    return osp.join(REPO, 'configs', name, 'released_vtab-1k.json')


def test_released_settings_follow_the_task_and_keep_defaults(tmp_path):
    from mmwst.datasets.vtab import released_settings

    dtd = released_settings(_table('rlrr'), 'dtd', lr=1.0, drop_path=0, weight_decay=0, hflip=0)
    assert (dtd['lr'], dtd['drop_path'], dtd['weight_decay'], dtd['hflip']) == (
        2e-3,
        0.1,
        5e-5,
        True,
    )
    hst = released_settings(_table('hst'), 'cifar100', lr=0, weight_decay=0, drop_path=0)
    assert hst['task'] == 'cifar' and hst['lr'] == 1e-2  # alias resolved
    wst = released_settings(_table('wst'), 'svhn', lr=5e-4, drop_path=0.0, scale=1.0)
    assert not wst['released'] and (wst['lr'], wst['scale']) == (5e-4, 1.0)
    assert released_settings(_table('wst'), 'dtd', lr=0, drop_path=0, scale=1.0)['scale'] == 0.1
    digits = released_settings(_table('hst'), 'digits', lr=0.5, weight_decay=0, drop_path=0)
    assert not digits['released'] and digits['lr'] == 0.5  # a generated task: the defaults
    # a row may only set what the config reads; a row must name a real task
    with pytest.raises(ValueError, match=r"sets \['hflip'\], which the config gives no default"):
        released_settings(_table('rlrr'), 'dtd', lr=1.0, drop_path=0, weight_decay=0)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"cifar10": {"lr": 1}}')
    with pytest.raises(ValueError, match="'cifar10' is not a canonical VTAB-1k task"):
        released_settings(str(bad), 'dtd', lr=1.0)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        released_settings(str(tmp_path / 'none.json'), 'dtd', lr=1.0)


def _fgvc(root, labels=None):
    labels = labels or {
        'train': {'a/1.jpg': 1, 'a/2.jpg': 2},
        'val': {'a/3.jpg': 1},
        'test': {'a/4.jpg': 2},
    }
    for split, anno in labels.items():
        for rel in anno:
            _image(str(root / 'images' / rel))
        (root / f'{split}.json').write_text(json.dumps(anno))
    return root


def test_fgvc_maps_labels_to_contiguous_indices(tmp_path, monkeypatch):
    from mmwst.datasets import fgvc

    monkeypatch.setitem(fgvc.FGVC_DATASETS, 'cub', fgvc.FGVCInfo(2, 'images'))
    _fgvc(tmp_path)
    train = FGVC(str(tmp_path), 'CUB_200_2011', split='trainval')
    assert [train.get_data_info(i)['gt_label'] for i in range(len(train))] == [0, 1, 0]
    test = FGVC(str(tmp_path), 'cub', split='test')
    assert test.get_data_info(0)['img_path'].endswith('images/a/4.jpg')


def test_fgvc_errors(tmp_path, monkeypatch):
    from mmwst.datasets import fgvc

    with pytest.raises(ValueError, match='unknown FGVC dataset'):
        FGVC(str(tmp_path), 'imagenet')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        FGVC(str(tmp_path / 'absent'), 'cub')
    _fgvc(tmp_path)
    with pytest.raises(ValueError, match='hold 2 distinct labels; cub has 200'):
        FGVC(str(tmp_path), 'cub')
    monkeypatch.setitem(fgvc.FGVC_DATASETS, 'cub', fgvc.FGVCInfo(2, 'images'))
    (tmp_path / 'test.json').write_text(json.dumps({'a/4.jpg': 7}))
    with pytest.raises(ValueError, match='label 7 of a/4.jpg'):
        FGVC(str(tmp_path), 'cub', split='test')


def test_fgvc_finds_the_usual_folder_under_a_common_root(tmp_path, monkeypatch):
    from mmwst.datasets import fgvc

    monkeypatch.setitem(fgvc.FGVC_DATASETS, 'cub', fgvc.FGVCInfo(2, 'images', 'CUB_200_2011'))
    _fgvc(tmp_path / 'CUB_200_2011')
    dataset = FGVC(str(tmp_path), 'cub', split='test', folder='auto')
    assert dataset.get_data_info(0)['img_path'] == str(
        tmp_path / 'CUB_200_2011' / 'images' / 'a' / '4.jpg'
    )


def test_relative_roots_are_read_from_the_working_directory(tmp_path, monkeypatch):
    """A relative data root (the configs' default) must not be joined onto itself."""
    from mmwst.datasets import fgvc

    _vtab_task(tmp_path / 'vtab')
    monkeypatch.setitem(fgvc.FGVC_DATASETS, 'cub', fgvc.FGVCInfo(2, 'images'))
    _fgvc(tmp_path / 'fgvc')
    monkeypatch.chdir(tmp_path)
    vtab = VTAB1k('vtab', 'cifar', split='test')
    assert len(vtab) == 3 and os.path.isfile(vtab.get_data_info(0)['img_path'])
    cub = FGVC('fgvc', 'cub', split='test')
    assert len(cub) == 1 and os.path.isfile(cub.get_data_info(0)['img_path'])


def test_an_empty_image_is_named_with_its_list_line_before_training(tmp_path):
    folder = _vtab_task(tmp_path)
    (folder / 'images' / '2.png').write_bytes(b'')
    with pytest.raises(ValueError, match=r'test.txt:3: image .*2.png is empty \(0 bytes\)'):
        VTAB1k(str(tmp_path), 'cifar', split='test')


def test_a_corrupt_image_names_its_file_and_list_line_when_loaded(tmp_path):
    folder = _vtab_task(tmp_path)
    (folder / 'images' / '1.png').write_bytes(b'not a png at all')
    dataset = VTAB1k(
        str(tmp_path), 'cifar', split='test', pipeline=[dict(type='LoadImageFromFile')]
    )
    dataset[0]  # a good image loads
    with pytest.raises(ValueError, match=r'test.txt:2: image .*1.png cannot be loaded'):
        dataset[1]
