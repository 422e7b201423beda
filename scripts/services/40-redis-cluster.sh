# A three-master Redis Cluster on 127.0.0.1:7001-7003, for the session-redis
# cluster tests. Set REDIS_CLUSTER_URL to use a cluster of your own instead.
#
# Idempotent: a healthy cluster from an earlier run is reused; one that is
# half up (a node gone, slots unassigned) is torn down and created afresh.
# Nodes keep no data (`--save "" --appendonly no`); their files and logs live
# under $SERVICES_DIR/redis-cluster.
if [ -z "${REDIS_CLUSTER_URL:-}" ]; then
    redis_cluster_ports=(7001 7002 7003)
    redis_cluster_dir="$SERVICES_DIR/redis-cluster"

    redis_cluster_ok() {
        local port
        for port in "${redis_cluster_ports[@]}"; do
            redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null |
                grep -q '^cluster_state:ok' || return 1
            [ "$(redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null |
                sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = "${#redis_cluster_ports[@]}" ] || return 1
        done
    }

    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        service_missing "Redis Cluster" \
            "redis-server and redis-cli are needed to start a cluster on 127.0.0.1:7001-7003 (apt-get install redis-server redis-tools; or set REDIS_CLUSTER_URL)"
    fi

    if ! redis_cluster_ok; then
        echo "==> starting Redis Cluster on 127.0.0.1:${redis_cluster_ports[0]}-${redis_cluster_ports[-1]}"
        # Tear down whatever an earlier run left behind.
        for port in "${redis_cluster_ports[@]}"; do
            if port_open "$port"; then
                redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
            fi
        done
        for port in "${redis_cluster_ports[@]}"; do
            for _ in $(seq 50); do port_open "$port" || break; sleep 0.1; done
            port_open "$port" && service_missing "Redis Cluster" \
                "127.0.0.1:$port is taken by something that is not a stoppable cluster node (free ports ${redis_cluster_ports[*]}; or set REDIS_CLUSTER_URL)"
        done
        rm -rf "$redis_cluster_dir"
        for port in "${redis_cluster_ports[@]}"; do
            mkdir -p "$redis_cluster_dir/$port"
            redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
                --cluster-enabled yes --cluster-config-file nodes.conf \
                --cluster-node-timeout 5000 --save "" --appendonly no \
                --dir "$redis_cluster_dir/$port" \
                --logfile "$redis_cluster_dir/$port/redis.log" >/dev/null ||
                service_missing "Redis Cluster" \
                    "redis-server failed to start on 127.0.0.1:$port (see $redis_cluster_dir/$port/redis.log)"
        done
        for port in "${redis_cluster_ports[@]}"; do
            wait_port "$port" 15 || service_missing "Redis Cluster" \
                "the node on 127.0.0.1:$port did not come up (see $redis_cluster_dir/$port/redis.log)"
        done
        redis_cluster_nodes=()
        for port in "${redis_cluster_ports[@]}"; do redis_cluster_nodes+=("127.0.0.1:$port"); done
        redis-cli --cluster create "${redis_cluster_nodes[@]}" --cluster-replicas 0 --cluster-yes \
            >"$redis_cluster_dir/create.log" 2>&1 ||
            service_missing "Redis Cluster" \
                "redis-cli --cluster create failed (see $redis_cluster_dir/create.log)"
        redis_cluster_deadline=$((SECONDS + 30))
        until redis_cluster_ok; do
            [ $SECONDS -lt $redis_cluster_deadline ] || service_missing "Redis Cluster" \
                "the cluster on 127.0.0.1:${redis_cluster_ports[0]}-${redis_cluster_ports[-1]} did not reach cluster_state:ok (see $redis_cluster_dir)"
            sleep 0.2
        done
    fi
    export REDIS_CLUSTER_URL="redis-cluster://127.0.0.1:${redis_cluster_ports[0]}?node=127.0.0.1:${redis_cluster_ports[1]}&node=127.0.0.1:${redis_cluster_ports[2]}"
fi
