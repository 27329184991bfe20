# Sourced by dist_train.sh and dist_test.sh after _python.sh: refuse a master port that is
# already taken (torch would fail later with a bare EADDRINUSE) and say how to pick another.
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
        echo "port $port is in use (another distributed run?); choose a free one, e.g." \
            "PORT=$((port + 1)) $hint" >&2
        exit 2
    fi
}
