# Helpers for scripts/services/*.sh. Each service file is sourced by
# scripts/test in order; it exports the URL its tests read and returns
# non-zero, after `service_missing`, when it cannot provide the service.

# Where services started by the test command keep their files and logs.
SERVICES_DIR="${SERVICES_DIR:-$PWD/target/services}"
mkdir -p "$SERVICES_DIR"

# port_open PORT [HOST]: whether something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# wait_port PORT SECONDS: wait until the port accepts connections.
wait_port() {
    local deadline=$((SECONDS + $2))
    until port_open "$1"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

# service_missing NAME WHAT-TO-DO: the loud failure every service uses.
service_missing() {
    echo "error: $1 is not available: $2" >&2
    exit 1
}
