#!/usr/bin/env bash
# Distributed evaluation with torchrun (gloo on machines without GPUs).
#   tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options]
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
port="${PORT:-29500}"
check_port "$port" "$0 $CONFIG $CHECKPOINT $NPROC ..."
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$port" \
    --nproc_per_node="$NPROC" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
