"""Builders of mmwst's detector task utilities, registered without importing mmdet."""

from __future__ import annotations

from ..registry import TASK_UTILS


@TASK_UTILS.register_module(name='InstanceBalancedSampler')
def build_instance_balanced_sampler(**kwargs):
    """``type='mmwst.InstanceBalancedSampler'``: mmdet's ``RandomSampler`` with the
    positives shared out evenly between the image's objects
    (:class:`mmwst.models.instance_balanced_sampler.InstanceBalancedSampler`), imported
    when a detector builds one."""
    from .instance_balanced_sampler import InstanceBalancedSampler

    return InstanceBalancedSampler(**kwargs)
