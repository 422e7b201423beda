# Redis on 127.0.0.1:6379.
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
if [ "$REDIS_URL" = "redis://127.0.0.1:6379" ] && ! port_open 6379; then
    if command -v redis-server >/dev/null 2>&1; then
        echo "==> starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir "$SERVICES_DIR" --logfile "$SERVICES_DIR/redis-6379.log" || true
    fi
    wait_port 6379 15 || service_missing Redis \
        "nothing listens on 127.0.0.1:6379 (apt-get install redis-server; or set REDIS_URL)"
fi
