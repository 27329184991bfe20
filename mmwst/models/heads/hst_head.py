"""The classification head of HST (Lin et al., arXiv 2310.05393)."""

from __future__ import annotations

from mmpretrain.models.heads import ClsHead
from torch import Tensor, nn

from ...registry import MODELS


@MODELS.register_module()
class HSTClsHead(ClsHead):
    """Pooled side-network features -> BatchNorm1d (no affine) -> Linear.

    The head of HST's classifier: the backbone's last output is the mean of the
    side network's stage-4 tokens ``(B, C_4)`` (a map ``(B, C_4, H, W)`` is
    mean-pooled first), normalised by a ``BatchNorm1d(C_4, affine=False, eps=1e-6)``
    and classified by ``Linear(C_4 -> K)`` (trunc-normal std 0.02, bias 0).

    Parameters: ``C_4 * K + K`` (the BatchNorm has none); ViT-B/16, C_4 = 72,
    K = 100: 7,300.

    Args:
        num_classes (int): K.
        in_channels (int): C_4, the side network's last width (72 by default in
            :class:`~mmwst.models.tuners.hst.HST`).
        init_cfg (dict, optional): Initialisation of the Linear. Defaults to
            ``dict(type='TruncNormal', layer='Linear', std=0.02)``.
        **kwargs: ``loss``, ``topk``, ``cal_acc`` of mmpretrain's ``ClsHead``.

    Examples:
        >>> import torch
        >>> from mmwst.models.heads import HSTClsHead
        >>> head = HSTClsHead(num_classes=10, in_channels=72).eval()
        >>> head((torch.rand(4, 72),)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        init_cfg: dict | None = dict(type='TruncNormal', layer='Linear', std=0.02),  # noqa: B006
        **kwargs,
    ) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        for name, value in (('num_classes', num_classes), ('in_channels', in_channels)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f'{name} must be an int, got {value!r}')
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.norm = nn.BatchNorm1d(in_channels, affine=False, eps=1e-6)
        self.fc = nn.Linear(in_channels, num_classes)
        self.reset_parameters()

    def pre_logits(self, feats: tuple[Tensor, ...]) -> Tensor:
        """The normalised pooled feature (B, C_4) of the backbone's last output."""
        x = feats[-1]
        if x.dim() == 4:
            x = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'HSTClsHead expects features of shape (B, {self.in_channels}) or '
                f'(B, {self.in_channels}, H, W), got {tuple(x.shape)}; set in_channels '
                "to the side network's last width"
            )
        return self.norm(x)

    def forward(self, feats: tuple[Tensor, ...]) -> Tensor:
        """Class scores (B, K)."""
        return self.fc(self.pre_logits(feats))

    def reset_parameters(self) -> None:
        """Linear trunc-normal(0.02) and bias 0; BatchNorm statistics reset."""
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)
        self.norm.reset_running_stats()
