#!/usr/bin/env bash
# The main job on its embedded default: sets up the environment if needed
# (tools/setup_env.sh), then runs tools/demo_dense.py - generate the shapes data if
# missing, train Cascade Mask R-CNN and UperNet on the dense WST + HST backbone, evaluate
# (COCO bbox/segm mAP, mIoU), print the metrics and save pictures of predictions.
# Extra arguments go to tools/demo_dense.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash tools/setup_env.sh)"
exec "$PY" tools/demo_dense.py "$@"
