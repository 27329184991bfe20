#!/usr/bin/env bash
# Distributed evaluation with torchrun (gloo on machines without GPUs).
#   tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options]
# PORT: the master port (default 29500); PORT=0 lets torchrun pick a free one and hold it
# (one machine only). Several machines: NNODES, NODE_RANK, MASTER_ADDR, as dist_train.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC [test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
source "$(dirname "$0")/_python.sh"
source "$(dirname "$0")/_port.sh"
rendezvous_options "${PORT:-29500}" "$0 $CONFIG $CHECKPOINT $NPROC ..."
exec "$PYTHON" -m torch.distributed.run \
    "${RENDEZVOUS[@]}" --nproc_per_node="$NPROC" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
