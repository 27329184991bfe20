"""A region sampler for two-stage detectors whose positives are shared out evenly between
an image's objects (mmdet's ``RandomSampler`` otherwise).

This module imports mmdet, which ``import mmwst`` does not: configs name the sampler
``type='mmwst.InstanceBalancedSampler'``, registered in mmwst's registry by
:func:`mmwst.models.task_utils.build_instance_balanced_sampler`, which imports this module
when a detector first builds one.
"""

from __future__ import annotations

import torch
from mmdet.models.task_modules.samplers import RandomSampler


def balanced_positives(gt_inds: torch.Tensor, num_expected: int) -> torch.Tensor:
    """Indices of at most ``num_expected`` positive regions (``gt_inds > 0``), taken in
    rounds: each round one more region of every object that has one left, objects and
    regions in a random order (``torch``'s generator), until ``num_expected``.

    Every object with a region keeps at least one when there are no more objects than
    ``num_expected``, and no object gets two more than another that has regions left.

    Examples:
        >>> torch.manual_seed(0)
        >>> gt_inds = torch.tensor([1, 1, 1, 1, 1, 1, 2, 0, 3, 0])
        >>> sorted(gt_inds[balanced_positives(gt_inds, 3)].tolist())
        [1, 2, 3]
    """
    positives = torch.nonzero(gt_inds > 0, as_tuple=False).squeeze(1)
    if positives.numel() <= num_expected:
        return positives
    candidates = positives[torch.randperm(positives.numel(), device=positives.device)]
    owners = gt_inds[candidates]
    # each candidate's rank among its object's candidates, in the random order
    owners_sorted, by_owner = torch.sort(owners, stable=True)
    position = torch.arange(owners.numel(), device=owners.device)
    first = torch.ones_like(owners_sorted, dtype=torch.bool)
    first[1:] = owners_sorted[1:] != owners_sorted[:-1]
    group_start = torch.cummax(torch.where(first, position, 0), dim=0).values
    rank = torch.empty_like(position)
    rank[by_owner] = position - group_start
    # round by round; within a round the random order decides which objects come first
    _, by_round = torch.sort(rank, stable=True)
    return candidates[by_round[:num_expected]]


class InstanceBalancedSampler(RandomSampler):
    """mmdet's ``RandomSampler`` with the positive regions shared out evenly between the
    image's objects (:func:`balanced_positives`); the negatives are drawn at random as
    there. With a few positives per image (``num * pos_fraction``), drawing them at
    random from all the regions on all objects leaves out now and then an object with
    few regions on it - a small or partly hidden one - from a stage's sample; here every
    object gets its share first. Arguments as ``RandomSampler``'s.

    Unlike mmdet's ``InstanceBalancedPosSampler`` it never samples a region twice and
    draws only from ``torch``'s generator, so a seeded training repeats itself.
    """

    def _sample_pos(self, assign_result, num_expected: int, **kwargs) -> torch.Tensor:
        return balanced_positives(assign_result.gt_inds, num_expected)
