"""tools/pyramid_locality.py: receptive-field centroids on a pyramid of known geometry."""

import importlib.util
import os.path as osp

import torch
from torch import nn

from tests.helpers import TOOLS

spec = importlib.util.spec_from_file_location(
    'pyramid_locality', osp.join(TOOLS, 'pyramid_locality.py')
)
locality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locality)


class Pooled(nn.Module):
    """Two levels, average pools of strides 4 and 8 (each output pixel sees exactly its
    own block of the image), optionally transposed."""

    def __init__(self, transpose: bool) -> None:
        super().__init__()
        self.transpose = transpose

    def forward(self, image):
        maps = [nn.functional.avg_pool2d(image, stride) for stride in (4, 8)]
        return tuple(m.transpose(2, 3) if self.transpose else m for m in maps)


def test_centroids_sit_on_their_targets_and_a_transposed_level_is_seen():
    for level in locality.receptive_fields(Pooled(transpose=False), size=32, seed=0):
        for found in level['positions']:
            assert torch.allclose(torch.tensor(found['centroid']), torch.tensor(found['target']))
            assert abs(found['near'] - 1.0) < 1e-6
    for level in locality.receptive_fields(Pooled(transpose=True), size=32, seed=0):
        stride = level['stride'][0]
        off_diagonal = [p for p in level['positions'] if p['position'][0] != p['position'][1]]
        assert off_diagonal
        for found in off_diagonal:
            (ty, tx), (cy, cx) = found['target'], found['centroid']
            assert abs(cy - tx) < 1e-4 and abs(cx - ty) < 1e-4  # the two axes swapped
            assert abs(cy - ty) >= 2 * stride  # far from its own target
