"""Pretrain a small ViT on generated images and export its frozen backbone.

    python tools/pretrain_backbone.py CONFIG [--work-dir DIR] [--out FILE.safetensors]
        [--cfg-options key=value ...]

1. trains CONFIG (a recipe under configs/pretrain/) with an mmengine runner, resuming
   an interrupted run from its last checkpoint;
2. evaluates the last checkpoint on the held-out instances (the config's test split):
   the upstream top-1 / top-5 accuracy;
3. writes the backbone alone, in fp16, as safetensors (``--out``; default
   ``<work-dir>/backbone.safetensors``) with a JSON card beside it (``.json``: the
   architecture, the recipe, the seed, the upstream accuracy, the training time, the
   sha256 of the file and the command that reproduces it);
4. loads the file back through ``mmwst.TunedVisionTransformer(pretrained=...)`` with
   the strict key check, so a file that does not load is never written silently.
"""

import argparse
import hashlib
import json
import os
import os.path as osp
import sys
import time

from mmengine.config import Config, DictAction

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def backbone_state(checkpoint: dict) -> dict:
    """The ``backbone.`` tensors of a runner checkpoint, prefix removed, in fp16."""
    state = checkpoint.get('state_dict', checkpoint)
    out = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
    if not out:
        raise ValueError('the checkpoint holds no backbone.* weights')
    return {k: v.detach().to('cpu').half().contiguous() for k, v in out.items()}


def host_config(cfg: Config) -> dict:
    """Backbone arguments a downstream host needs to rebuild the pretrained network."""
    bb = cfg.model.backbone
    return dict(
        arch=dict(bb.arch),
        img_size=bb.img_size,
        patch_size=bb.patch_size,
        final_norm=bb.get('final_norm', True),
    )


def _in_repo(arg: str) -> str:
    """A path inside the repository, relative to it (the command must run anywhere)."""
    path = osp.abspath(arg)
    if osp.isabs(arg) and path.startswith(REPO + os.sep):
        return osp.relpath(path, REPO)
    return arg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a pretraining recipe (configs/pretrain/*.py)')
    parser.add_argument('--work-dir', help='default: work_dirs/pretrain/<config name>')
    parser.add_argument('--out', help='default: <work-dir>/backbone.safetensors')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config {args.config!r} does not exist')

    import torch
    from mmengine.runner import Runner
    from safetensors.torch import save_file

    import mmwst  # noqa: F401  (checks the stack, registers mmwst)
    from mmwst.engine import prepare_config, safe_loading
    from mmwst.models.backbones import TunedVisionTransformer

    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'pretrain', name)
    out = args.out or osp.join(work_dir, 'backbone.safetensors')
    cfg = Config.fromfile(args.config)
    prepare_config(
        cfg,
        config_path=args.config,
        work_dir=work_dir,
        resume='auto',
        cfg_options=args.cfg_options,
    )
    start = time.time()
    runner = Runner.from_cfg(cfg)
    with safe_loading():  # resuming reads checkpoints with weights_only=True
        runner.train()
        train_seconds = time.time() - start
        metrics = runner.test()

    last = osp.join(work_dir, 'last_checkpoint')
    with open(last) as f:
        ckpt_path = f.read().strip()
    checkpoint = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    state = backbone_state(checkpoint)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    host = host_config(cfg)
    save_file(state, out, metadata=dict(format='mmpretrain', host=json.dumps(host)))

    # the strict check: every backbone key present, every shape right
    model = TunedVisionTransformer(**host, pretrained=out)
    model.init_weights()

    card = dict(
        file=osp.basename(out),
        sha256=sha256(out),
        bytes=osp.getsize(out),
        dtype='float16',
        host=host,
        parameters=int(sum(v.numel() for v in state.values())),
        recipe=osp.relpath(osp.abspath(args.config), REPO),
        cfg_options=dict(args.cfg_options),
        seed=cfg.get('randomness', {}).get('seed'),
        dataset={
            k: v
            for k, v in cfg.train_dataloader.dataset.items()
            if k not in ('pipeline', 'cache_dir')
        },
        epochs=cfg.train_cfg.get('max_epochs'),
        upstream={k: round(float(v), 2) for k, v in metrics.items()},
        upstream_split='held-out instances of the pretraining categories (the test split)',
        train_minutes=round(train_seconds / 60, 1),
        torch=torch.__version__,
        command=' '.join(
            ['python', 'tools/pretrain_backbone.py', *map(_in_repo, argv or sys.argv[1:])]
        ),
    )
    with open(osp.splitext(out)[0] + '.json', 'w') as f:
        json.dump(card, f, indent=2)
        f.write('\n')
    print(json.dumps(card, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
