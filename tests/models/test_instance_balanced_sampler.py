"""mmwst.InstanceBalancedSampler: each cascade stage's positive regions shared out evenly
between an image's objects, negatives at random, seeded by torch alone."""

import pytest
import torch

pytest.importorskip('mmdet')


def _owners(counts: list[int], negatives: int, seed: int) -> torch.Tensor:
    """``gt_inds`` of regions: ``counts[i]`` regions on object ``i + 1``, ``negatives``
    on none, shuffled."""
    owners = torch.tensor([i + 1 for i, c in enumerate(counts) for _ in range(c)] + [0] * negatives)
    return owners[torch.randperm(len(owners), generator=torch.Generator().manual_seed(seed))]


@pytest.mark.parametrize(
    ('counts', 'expected'),
    [
        ([30, 2, 1, 5], 12),  # one large object with most of the regions
        ([1, 1, 1, 1, 1, 1], 4),  # more objects than positives
        ([9, 9, 9], 12),
        ([40, 1], 12),
        ([3, 2], 12),  # fewer regions than wanted: all of them
    ],
)
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_positives_are_shared_out_evenly_between_the_objects(counts, expected, seed):
    from mmwst.models.instance_balanced_sampler import balanced_positives

    gt_inds = _owners(counts, negatives=20, seed=seed)
    torch.manual_seed(seed)
    picked = balanced_positives(gt_inds, expected)
    assert len(set(picked.tolist())) == len(picked) == min(expected, sum(counts))
    assert (gt_inds[picked] > 0).all()
    got = torch.bincount(gt_inds[picked], minlength=len(counts) + 1)[1:].tolist()
    # an object short of the most-sampled one by two or more has no region left
    top = max(got)
    for have, regions in zip(got, counts):
        assert have >= top - 1 or have == regions, (got, counts)
    if len(counts) <= expected:
        assert min(got) >= 1  # no object left out


def test_a_seeded_draw_repeats_and_the_seed_matters():
    from mmwst.models.instance_balanced_sampler import balanced_positives

    gt_inds = _owners([30, 10, 4, 2], negatives=50, seed=0)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(balanced_positives(gt_inds, 12).tolist())
    assert draws[0] == draws[1] and draws[0] != draws[2]


def test_the_registered_sampler_samples_as_random_sampler_but_for_the_positives():
    """Built by mmdet's registry from ``type='mmwst.InstanceBalancedSampler'`` (as the
    demo's cascade stages name it): the ground-truth boxes join the regions, at most
    ``num * pos_fraction`` positives shared out between the objects, the rest negatives."""
    from mmdet.models.task_modules.assigners import AssignResult
    from mmdet.registry import TASK_UTILS
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData

    import mmwst  # noqa: F401

    sampler = TASK_UTILS.build(
        dict(
            type='mmwst.InstanceBalancedSampler',
            num=32,
            pos_fraction=0.25,
            neg_pos_ub=-1,
            add_gt_as_proposals=True,
        )
    )
    gt_inds = _owners([40, 2, 1], negatives=60, seed=0)
    regions = torch.rand(len(gt_inds), 4) * 50
    regions[:, 2:] += regions[:, :2] + 5
    gts = torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 40.0, 40.0], [5.0, 30.0, 15, 45]])
    labels = torch.tensor([0, 1, 2])
    result = AssignResult(3, gt_inds, torch.rand(len(gt_inds)), labels[(gt_inds - 1).clamp(0)])
    torch.manual_seed(0)
    sampled = sampler.sample(
        result,
        InstanceData(priors=HorizontalBoxes(regions)),
        InstanceData(bboxes=HorizontalBoxes(gts), labels=labels),
    )
    per_object = torch.bincount(sampled.pos_assigned_gt_inds, minlength=3).tolist()
    # 8 positives: the boxes of the two small objects and their regions, the large one
    # the rest
    assert sum(per_object) == 8 and per_object[1] == 3 and per_object[2] == 2, per_object
    assert len(sampled.neg_inds) == 24 and len(set(sampled.neg_inds.tolist())) == 24
