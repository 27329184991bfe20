"""The generated pretraining datasets: fractal categories and procedural scenes."""

import numpy as np
import pytest

from mmwst.datasets import FractalDB, ProceduralScenes
from mmwst.datasets.generation.fractals import chaos_game, coverage, sample_systems
from mmwst.datasets.generation.procedural_scenes import _HARMONICS, _inside, sample_programs

DATASETS = [FractalDB, ProceduralScenes]


@pytest.mark.parametrize('cls', DATASETS)
def test_same_seed_same_images_other_seed_other_images(cls):
    a = cls(num_classes=3, num_per_class=4, image_size=16, seed=1)
    b = cls(num_classes=3, num_per_class=4, image_size=16, seed=1)
    c = cls(num_classes=3, num_per_class=4, image_size=16, seed=2)
    assert a.images.shape == (12, 16, 16, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert [a[i]['gt_label'] for i in range(12)] == [i // 4 for i in range(12)]


@pytest.mark.parametrize('cls', DATASETS)
def test_val_split_holds_new_instances_of_the_same_categories(cls):
    train = cls(num_classes=3, num_per_class=4, image_size=16)
    val = cls(num_classes=3, num_per_class=4, image_size=16, split='val')
    assert not np.array_equal(train.images, val.images)
    if cls is FractalDB:
        assert all(np.array_equal(s, t) for s, t in zip(train.systems, val.systems))
    else:
        assert all(np.array_equal(train.programs[k], val.programs[k]) for k in train.programs)


@pytest.mark.parametrize('cls', DATASETS)
def test_images_reach_the_pipeline_in_bgr_like_loaded_files(cls):
    data = cls(num_classes=2, num_per_class=2, image_size=16)
    rgb = data.render()
    assert np.array_equal(data[3]['img'], rgb[3][..., ::-1])
    assert data[3]['img_shape'] == (16, 16)


@pytest.mark.parametrize('cls', DATASETS)
def test_cache_is_written_once_and_read_back(cls, tmp_path, monkeypatch):
    first = cls(num_classes=2, num_per_class=3, image_size=16, cache_dir=str(tmp_path))
    files = list(tmp_path.glob('*.npy'))
    assert len(files) == 1

    def no_render(self):
        raise AssertionError('rendered again although the cache holds the images')

    monkeypatch.setattr(cls, 'render', no_render)
    again = cls(num_classes=2, num_per_class=3, image_size=16, cache_dir=str(tmp_path))
    assert np.array_equal(first.images, again.images)
    # other arguments are another file: never a stale array
    with pytest.raises(AssertionError, match='rendered again'):
        cls(num_classes=2, num_per_class=3, image_size=16, seed=5, cache_dir=str(tmp_path))


def test_a_damaged_cache_is_rendered_again(tmp_path):
    first = FractalDB(num_classes=2, num_per_class=3, image_size=16, cache_dir=str(tmp_path))
    (path,) = tmp_path.glob('*.npy')
    np.save(path, np.zeros((1, 2, 2, 3), np.uint8))
    again = FractalDB(num_classes=2, num_per_class=3, image_size=16, cache_dir=str(tmp_path))
    assert np.array_equal(first.images, again.images)


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(num_classes=1), 'num_classes'),
        (dict(num_per_class=0), 'num_per_class'),
        (dict(image_size=4), 'image_size'),
        (dict(split='test'), 'split'),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    args = {**dict(num_classes=2, num_per_class=2, image_size=16), **kwargs}
    with pytest.raises(ValueError, match=message):
        FractalDB(**args)


def test_every_sampled_map_contracts_and_covers_a_sensible_share():
    systems = sample_systems(12, seed=3)
    for maps in systems:
        assert 2 <= len(maps) <= 4
        singular = np.linalg.svd(maps[:, :, :2], compute_uv=False)
        assert singular.max() < 0.9 + 1e-9 and singular.min() > 0.2 - 1e-9
    cov = coverage(
        np.stack([m for m in systems if len(m) == len(systems[0])]), np.random.default_rng(0)
    )
    assert np.all((cov > 0.04) & (cov < 0.6))


def test_chaos_game_points_lie_on_the_attractor():
    # two maps halving towards 0 and towards 1 on the x axis: the attractor is [0, 1] x {0}
    maps = np.array([[[0.5, 0, 0], [0, 0.5, 0]], [[0.5, 0, 0.5], [0, 0.5, 0]]])[None]
    points, which = chaos_game(maps, np.random.default_rng(0), chains=16, steps=60, burn=30)
    assert points.shape == (1, 16 * 30, 2) and set(np.unique(which)) == {0, 1}
    assert np.abs(points[..., 1]).max() < 1e-6
    assert points[..., 0].min() > -1e-6 and points[..., 0].max() < 1 + 1e-6
    assert points[..., 0].std() > 0.2  # spread over the segment, not stuck at a point


def test_contour_test_matches_the_polar_formula():
    programs = sample_programs(3, seed=0)
    u, v = np.random.default_rng(1).uniform(-1.5, 1.5, size=(2, 3, 20, 20)).astype(np.float32)
    t = np.arctan2(v, u)
    radius = 1 + sum(
        programs['amp'][:, j, None, None] * np.cos(k * t + programs['phase'][:, j, None, None])
        for j, k in enumerate(_HARMONICS)
    )
    expected = np.hypot(u, v) < radius
    got = _inside(u, v, programs['amp'], programs['phase'])
    near = np.abs(np.hypot(u, v) - radius) < 1e-4  # float32 ties on the boundary
    assert np.array_equal(got[~near], expected[~near])
