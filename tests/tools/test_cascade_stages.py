"""tools/cascade_stages.py: the positive regions each object gets in each cascade stage
and each stage's verdict on the true boxes (the demo detector, untrained: the counting is
checked, not what a trained detector would say); the shapes generator's partly hidden
annotations."""

import json
import os.path as osp
import re

import pytest

from tests.helpers import REPO, TOOLS, run_tool, tool_env, untrained_detector_checkpoint

pytest.importorskip('mmdet')

DEMO_DET = osp.join(REPO, 'configs', 'demo', 'shapes_cascade_mask_rcnn.py')
GROUP = re.compile(r'^  (.+?): ([\d./ ]+) each; none for ([\d/ ]+) of (\d+)$')
SHARE = re.compile(r'^  (.+) \((\d+) objects\): ([\d.% /]+)$')


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from mmwst.datasets.generation.shapes import write_shapes_dataset

    root = tmp_path_factory.mktemp('cascade_stages')
    return write_shapes_dataset(str(root / 'shapes'), num_train=6, num_val=40)


def _detector(shapes, monkeypatch, **options):
    import torch
    from mmdet.apis import init_detector

    import mmwst  # noqa: F401

    monkeypatch.setenv('SHAPES_ROOT', shapes['root'])
    torch.manual_seed(0)
    options = {'train_dataloader.dataset.dataset.indices': 6, **options}
    return init_detector(DEMO_DET, None, device='cpu', cfg_options=options)


def test_partly_hidden_annotations_are_the_pixel_outlines(shapes):
    """An object something covers is annotated with the outline of its visible pixels
    (integer corners); a whole one with its shape's own vertices (rounded to 0.01 px)."""
    from mmwst.datasets.generation.shapes import partly_hidden

    with open(shapes['val_ann_file']) as f:
        annotations = json.load(f)['annotations']
    hidden = [partly_hidden(a['category_id'], a['segmentation'][0]) for a in annotations]
    on_pixels = [all(float(v).is_integer() for v in a['segmentation'][0]) for a in annotations]
    assert hidden == on_pixels
    assert 0 < sum(hidden) < len(hidden)
    with pytest.raises(ValueError, match='category_id is one of'):
        partly_hidden(4, [0.0] * 8)


def test_each_stage_counts_the_positives_its_sampler_gives_each_object(shapes, monkeypatch):
    """One positive region per image and stage (4 regions, a quarter positive): each
    image's object boxes are among its regions, so every stage samples exactly one
    positive per image, and all but one object per image get none."""
    from tools.cascade_stages import positives_per_object

    options = {}
    for stage in range(3):
        options[f'model.train_cfg.rcnn.{stage}.sampler.num'] = 4
    model = _detector(shapes, monkeypatch, **options)
    lines = positives_per_object(model, num_images=6)
    objects = int(re.search(r'\((\d+) objects', lines[0]).group(1))
    groups = [GROUP.match(line).groups() for line in lines[1:]]
    assert [g[0].split(' (')[0] for g in groups] == ['smallest third', 'the rest']
    sizes = [int(g[3]) for g in groups]
    assert sum(sizes) == objects and sizes[0] == objects // 3
    for stage in range(3):
        sampled = sum(float(g[1].split(' / ')[stage]) * n for g, n in zip(groups, sizes))
        assert sampled == pytest.approx(6, abs=0.005 * objects), lines
        none = sum(int(g[2].split(' / ')[stage]) for g in groups)
        assert none == objects - 6, lines
    assert model.training is False  # left in evaluation mode


def test_each_stage_is_asked_about_every_validation_object(shapes, monkeypatch):
    """The verdicts cover every validation object once, split as the annotations say
    (partly hidden or whole), each share a count of that group's objects."""
    from mmwst.datasets.generation.shapes import partly_hidden
    from tools.cascade_stages import true_box_verdicts

    with open(shapes['val_ann_file']) as f:
        annotations = json.load(f)['annotations']
    hidden = sum(partly_hidden(a['category_id'], a['segmentation'][0]) for a in annotations)
    lines = true_box_verdicts(_detector(shapes, monkeypatch))
    assert lines[0].startswith('true boxes given their own class below 0.5 over 40 ')
    groups = {m.group(1): m for m in map(SHARE.match, lines[1:])}
    assert {k: int(m.group(2)) for k, m in groups.items()} == {
        'partly hidden': hidden,
        'whole': len(annotations) - hidden,
    }
    for match in groups.values():
        count = int(match.group(2))
        for share in match.group(3).split(' / '):
            low = float(share.rstrip('%')) * count / 100
            assert low == pytest.approx(round(low), abs=0.06), (share, count)


def test_the_command_prints_both_reports(shapes, tmp_path):
    checkpoint = untrained_detector_checkpoint(DEMO_DET, str(tmp_path / 'detector.pth'))
    proc = run_tool(
        [
            osp.join(TOOLS, 'cascade_stages.py'),
            DEMO_DET,
            checkpoint,
            '--train-images',
            '2',
            '--cfg-options',
            'train_dataloader.dataset.dataset.indices=6',
        ],
        cwd=REPO,
        env=tool_env(SHAPES_ROOT=shapes['root']),
    )
    lines = proc.stdout.splitlines()
    assert any(
        line.startswith('positive regions per object over 2 training images') for line in lines
    )
    assert any(line.startswith('true boxes given their own class') for line in lines)


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['--train-images', '0'], '--train-images must be at least 1, got 0'),
        (['missing.pth'], 'no such file: missing.pth'),
    ],
)
def test_bad_arguments_are_refused_before_the_model_loads(args, message):
    checkpoint = args.pop(0) if args[0].endswith('.pth') else DEMO_DET
    proc = run_tool(
        [osp.join(TOOLS, 'cascade_stages.py'), DEMO_DET, checkpoint, *args],
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
