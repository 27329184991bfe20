"""Print the trainable-parameter report of a config's model.

    python tools/count_params.py CONFIG [--json] [--cfg-options key=value ...]

Per tuner (including the host parameters it trains, e.g. BitFit's biases), the frozen
host, neck and head: trainable / total parameters and trainable storage in KB, with
and without the head. ``--json`` prints one JSON object instead (keys ``trainable``,
``trainable_without_head``, ``total``, ``total_without_head``, ``rows``). No weights
are loaded.
"""

import argparse
import json
import sys

from mmengine.config import Config, DictAction


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={}, help='override config entries'
    )
    args = parser.parse_args(argv)

    from mmengine.registry import MODELS, init_default_scope

    import mmwst  # noqa: F401
    from mmwst.models.param_report import parameter_report

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    report = parameter_report(model)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(f'{args.config}\n{report.table()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
