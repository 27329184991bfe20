"""Fold mergeable tuners into the weights and write a plain mmpretrain checkpoint.

    python tools/merge_tuners.py CONFIG CHECKPOINT OUT.pth [--config-out OUT.py]
                                 [--cfg-options ...]

CHECKPOINT may be adapter-only (the default training checkpoint): the frozen base is
loaded from the config's ``model.backbone.pretrained`` file. Every tuner must be
mergeable (LoRA, SSF, BitFit, LN-tune, RLRR, linear probe, full fine-tuning). OUT holds
``state_dict`` (mmpretrain ``VisionTransformer`` / ``SwinTransformer`` names plus neck
and head) and ``meta.config``: the same model as a plain mmpretrain config, which builds
without mmwst and gives the tuned model's outputs at zero inference overhead, and
``meta.dataset_meta`` (the class names) when CHECKPOINT has it. ``--config-out`` also
writes the whole config with that model in place of the tuned one: what mmpretrain's
``ImageClassificationInferencer`` and test tool read together with OUT.
"""

import argparse
import sys

from mmengine.config import Config, DictAction

PLAIN_BACKBONES = {
    'TunedVisionTransformer': 'VisionTransformer',
    'TunedSwinTransformer': 'SwinTransformer',
}
MMWST_ONLY_ARGS = ('tuners', 'pretrained', 'save_frozen')


def plain_model_config(model_cfg: dict) -> dict:
    """The model config with mmwst's backbone replaced by mmpretrain's own."""
    cfg = Config(dict(model=model_cfg)).model.to_dict()
    backbone = cfg['backbone']
    name = str(backbone['type']).split('.')[-1]
    if name not in PLAIN_BACKBONES:
        raise ValueError(f'{backbone["type"]} is not an mmwst tuned backbone')
    if backbone.get('out_type') == 'avg_patch':
        raise ValueError(
            "out_type='avg_patch' has no mmpretrain equivalent; merged "
            'checkpoints are written for the other output types'
        )
    backbone['type'] = PLAIN_BACKBONES[name]
    for key in MMWST_ONLY_ARGS:
        backbone.pop(key, None)
    return _without_mmwst_scope(cfg)


def _without_mmwst_scope(cfg):
    """``cfg`` without the ``_scope_='mmwst'`` marks that mmengine puts on parts of a
    config inherited through ``mmwst::`` (their names are the host library's), so that
    the plain model builds without mmwst."""
    if isinstance(cfg, dict):
        return {
            k: _without_mmwst_scope(v)
            for k, v in cfg.items()
            if not (k == '_scope_' and v == 'mmwst')
        }
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_mmwst_scope(v) for v in cfg)
    return cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='training checkpoint (adapter-only or full)')
    parser.add_argument('out', help='where to write the merged checkpoint')
    parser.add_argument(
        '--config-out', help='also write the whole config with the plain model here (.py)'
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)

    import torch
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    import mmwst  # noqa: F401
    from mmwst.engine import safe_loading

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    plain = plain_model_config(cfg.model)  # fails early on unsupported models
    model = MODELS.build(cfg.model)
    with safe_loading():  # weights_only=True, with an error that says what to do
        checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    backbone = model.backbone
    backbone.merge_tuners()
    with backbone.full_state_dict():
        state = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith('backbone.tuners.')}
    meta = dict(
        config=Config(dict(model=plain)).pretty_text,
        merged_from=args.checkpoint,
        tuners=[type(t).__name__ for t in backbone.tuners],
    )
    source_meta = checkpoint.get('meta') or {}
    if 'dataset_meta' in source_meta:  # the class names inferencers label predictions with
        meta['dataset_meta'] = source_meta['dataset_meta']
    torch.save(dict(state_dict=state, meta=meta), args.out)
    if args.config_out:
        cfg.model = plain
        cfg.dump(args.config_out)
    print(
        f'merged {", ".join(meta["tuners"]) or "no tuner"} into {args.out} ({len(state)} tensors)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
