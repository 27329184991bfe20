#!/usr/bin/env bash
# Distributed training with torchrun (one process per GPU; on a machine without GPUs,
# one CPU process each, over gloo - chosen automatically).
#   tools/dist_train.sh CONFIG NPROC [tools/train.py options]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on each.
# PORT: the master port (default 29500); PORT=0 lets torchrun pick a free one and hold it
# (one machine only).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [train.py options]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
source "$(dirname "$0")/_python.sh"
source "$(dirname "$0")/_port.sh"
rendezvous_options "${PORT:-29500}" "$0 $CONFIG $NPROC ..."
exec "$PYTHON" -m torch.distributed.run \
    "${RENDEZVOUS[@]}" --nproc_per_node="$NPROC" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "$@"
