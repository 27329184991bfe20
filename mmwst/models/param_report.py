"""Count trainable and total parameters per tuner, backbone, neck and head.

Used by ``tools/count_params.py`` and logged by :class:`mmwst.engine.ParamReportHook`
when training starts. Counts follow the papers' convention of reporting both with and
without the task head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from .backbones.host import TunableHostMixin


@dataclass
class ParamRow:
    name: str
    trainable: int
    total: int
    trainable_kb: float

    @classmethod
    def of(cls, name: str, params: list[nn.Parameter]) -> ParamRow:
        trainable = [p for p in params if p.requires_grad]
        return cls(
            name=name,
            trainable=sum(p.numel() for p in trainable),
            total=sum(p.numel() for p in params),
            trainable_kb=sum(p.numel() * p.element_size() for p in trainable) / 1024,
        )


@dataclass
class ParamReport:
    rows: list[ParamRow]
    trainable: int
    trainable_without_head: int
    total: int
    total_without_head: int

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        width = max(24, *(len(r.name) for r in self.rows))
        lines = [f'{"part":<{width}} {"trainable":>14} {"total":>14} {"storage":>12}']
        lines.append('-' * len(lines[0]))
        for r in self.rows:
            lines.append(
                f'{r.name:<{width}} {r.trainable:>14,} {r.total:>14,} {r.trainable_kb:>9,.1f} KB'
            )
        lines.append('-' * len(lines[0]))
        lines.append(
            f'{"without head":<{width}} {self.trainable_without_head:>14,} '
            f'{self.total_without_head:>14,}'
        )
        lines.append(f'{"with head":<{width}} {self.trainable:>14,} {self.total:>14,}')
        share = 100.0 * self.trainable_without_head / max(self.total_without_head, 1)
        lines.append(f'trainable share without head: {share:.4f}%')
        return '\n'.join(lines)


def _backbone_rows(backbone: nn.Module) -> list[ParamRow]:
    if not isinstance(backbone, TunableHostMixin):
        return [ParamRow.of('backbone', list(backbone.parameters()))]
    rows, claimed = [], set()
    for name, params in backbone.named_parts():
        own = [p for p in params if id(p) not in claimed]
        claimed.update(id(p) for p in own)
        rows.append(ParamRow.of(name, own))
    rest = [p for p in backbone.parameters() if id(p) not in claimed]
    rows.append(ParamRow.of('backbone (frozen host)', rest))
    return rows


def parameter_report(model: nn.Module) -> ParamReport:
    """Report for a whole model (classifier, detector, segmentor) or a bare backbone."""
    if isinstance(model, TunableHostMixin) or not hasattr(model, 'backbone'):
        rows = _backbone_rows(model)
        head_rows: list[ParamRow] = []
    else:
        rows = _backbone_rows(model.backbone)
        neck = getattr(model, 'neck', None)
        if isinstance(neck, nn.Module):
            rows.append(ParamRow.of('neck', list(neck.parameters())))
        seen = {id(p) for p in model.backbone.parameters()}
        if isinstance(neck, nn.Module):
            seen.update(id(p) for p in neck.parameters())
        head_rows = []
        for name, child in model.named_children():
            params = [p for p in child.parameters() if id(p) not in seen]
            if params:
                head_rows.append(ParamRow.of(name, params))
                seen.update(id(p) for p in params)
    body = rows
    return ParamReport(
        rows=body + head_rows,
        trainable=sum(r.trainable for r in body + head_rows),
        trainable_without_head=sum(r.trainable for r in body),
        total=sum(r.total for r in body + head_rows),
        total_without_head=sum(r.total for r in body),
    )
