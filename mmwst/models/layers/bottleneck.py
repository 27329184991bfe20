"""The down-project / activation / up-project bottleneck used by adapter methods."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


class Bottleneck(nn.Module):
    """``up(act(down(x)))`` with ``up`` zero-initialised, so it starts as zero.

    Args:
        dim (int): Input and output width.
        hidden (int): Bottleneck width.
        act (str): ``'gelu'`` or ``'relu'``. Defaults to 'gelu'.
        down_init (str): ``'kaiming_uniform'`` (``a=sqrt(5)``, PyTorch's Linear
            default) or ``'xavier_uniform'``. Defaults to 'kaiming_uniform'.
    """

    ACTIVATIONS = {'gelu': nn.GELU, 'relu': nn.ReLU}

    def __init__(
        self, dim: int, hidden: int, act: str = 'gelu', down_init: str = 'kaiming_uniform'
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f'bottleneck width must be >= 1, got {hidden}')
        if act not in self.ACTIVATIONS:
            raise ValueError(f'act must be one of {sorted(self.ACTIVATIONS)}, got {act!r}')
        if down_init not in ('kaiming_uniform', 'xavier_uniform'):
            raise ValueError(
                f"down_init must be 'kaiming_uniform' or 'xavier_uniform', got {down_init!r}"
            )
        self.down = nn.Linear(dim, hidden)
        self.act = self.ACTIVATIONS[act]()
        self.up = nn.Linear(hidden, dim)
        self.down_init = down_init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.down_init == 'kaiming_uniform':
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        else:
            nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def product_weights(self) -> list[Tensor]:
        """``down``'s and ``up``'s weights and biases, in the order :meth:`forward`
        takes them."""
        return [self.down.weight, self.down.bias, self.up.weight, self.up.bias]

    def forward(self, x: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        """``up(act(down(x)))``; ``weights``: :meth:`product_weights` as the caller cast
        them (None: its own)."""
        if weights is None:
            return self.up(self.act(self.down(x)))
        down_w, down_b, up_w, up_b = weights
        return F.linear(self.act(F.linear(x, down_w, down_b)), up_w, up_b)
