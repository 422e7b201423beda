# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`).
export POSTGRES_URL="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [[ "$POSTGRES_URL" == *"@127.0.0.1:5432/"* ]] && ! port_open 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "==> starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    wait_port 5432 30 || service_missing PostgreSQL \
        "nothing listens on 127.0.0.1:5432 (apt-get install postgresql, trust auth for 127.0.0.1, a database named test; or set POSTGRES_URL)"
fi
