# Sourced by dist_train.sh and dist_test.sh after _python.sh: torchrun's rendezvous
# options for a master port.
#   rendezvous_options PORT USAGE_HINT      (sets the array RENDEZVOUS)
# PORT=N: the master node's torchrun listens on N (29500 by default; every machine of a
#   run sets the same N). A port already taken is refused here, naming it and saying how
#   to pick another (torch would fail later with a bare EADDRINUSE).
# PORT=0: one machine only. torchrun's standalone rendezvous binds free ports itself and
#   keeps them open until the run ends, so no other program can take them meanwhile.
rendezvous_options() {
    local port=$1 hint=$2
    if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -gt 65535 ]; then
        echo "PORT=$port is not a port number (0 to 65535)" >&2
        exit 2
    fi
    if [ "$port" -eq 0 ]; then
        if [ "${NNODES:-1}" != 1 ]; then
            echo "PORT=0 (a free port chosen by torchrun) works on one machine only;" \
                "with NNODES=$NNODES, set the same free PORT on every machine" >&2
            exit 2
        fi
        RENDEZVOUS=(--standalone)
        return 0
    fi
    check_port "$port" "$hint"
    RENDEZVOUS=(
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}"
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$port"
    )
}

# Refuse a master port that is already taken, saying how to pick another.
#   check_port PORT USAGE_HINT
check_port() {
    local port=$1 hint=$2
    [ "${NODE_RANK:-0}" = 0 ] || return 0  # only the master node binds the port
    if ! "$PYTHON" - "$port" <<'PY' 2>/dev/null; then
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(('', int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
        local other="PORT=$((port + 1)) $hint"
        [ "${NNODES:-1}" != 1 ] || other="$other (or PORT=0: torchrun picks a free one)"
        echo "port $port is in use (another distributed run?); choose a free one, e.g." \
            "$other" >&2
        exit 2
    fi
}
