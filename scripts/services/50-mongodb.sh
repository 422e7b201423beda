# MongoDB (wire-compatible) on 127.0.0.1:27117 for session-mongodb.
#
# Unless MONGODB_URL is set (e.g. to a real MongoDB), this starts SecantusDB
# (`secantusd-py`, a pure-Python MongoDB-compatible server from PyPI; GPL-2.0,
# a test tool only, never a Cargo dependency) with in-memory storage,
# installing it with pip when it is missing. The session-mongodb tests also
# start and stop their own instance of it (see SECANTUSD there).
MONGODB_PORT=27117
if [ -z "${MONGODB_URL:-}" ]; then
    export MONGODB_URL="mongodb://127.0.0.1:${MONGODB_PORT}"
    if ! port_open "$MONGODB_PORT"; then
        if ! command -v secantusd-py >/dev/null 2>&1; then
            echo "==> installing SecantusDB (pip install SecantusDB) for the MongoDB tests"
            python3 -m pip install --quiet SecantusDB >"$SERVICES_DIR/mongodb-pip.log" 2>&1 \
                || pip install --quiet SecantusDB >>"$SERVICES_DIR/mongodb-pip.log" 2>&1 || true
            hash -r
        fi
        if command -v secantusd-py >/dev/null 2>&1; then
            echo "==> starting SecantusDB (MongoDB wire protocol) on 127.0.0.1:${MONGODB_PORT}"
            nohup setsid secantusd-py --host 127.0.0.1 --port "$MONGODB_PORT" --storage-path :memory: \
                --log-level WARNING >"$SERVICES_DIR/mongodb-${MONGODB_PORT}.log" 2>&1 </dev/null &
        fi
        wait_port "$MONGODB_PORT" 30 || service_missing MongoDB \
            "nothing listens on 127.0.0.1:${MONGODB_PORT} and secantusd-py could not be installed or started (pip install SecantusDB; see $SERVICES_DIR/mongodb-*.log; or set MONGODB_URL to a MongoDB server)"
    fi
fi
