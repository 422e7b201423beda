# MariaDB (or MySQL 8) on 127.0.0.1:3306 (root, no password, database `test`).
export MYSQL_URL="${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
if [[ "$MYSQL_URL" == *"@127.0.0.1:3306/"* ]] && ! port_open 3306; then
    if [ -x /usr/sbin/mariadbd ]; then
        echo "==> starting MariaDB"
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    fi
    wait_port 3306 30 || service_missing MariaDB \
        "nothing listens on 127.0.0.1:3306 (apt-get install mariadb-server, root with an empty password, a database named test; or set MYSQL_URL)"
fi
# session-sqlx stores and loads 16 MiB sessions: a packet holds the whole
# statement, so the server must accept at least 32 MiB (MariaDB's default is
# 16 MiB). Raised only on the local test server, only when lower; a
# connection sees the new value from its next connect on.
if [[ "$MYSQL_URL" == *"@127.0.0.1:3306/"* ]] && command -v mariadb >/dev/null 2>&1; then
    packet="$(mariadb -uroot -h127.0.0.1 -N -B -e 'SELECT @@GLOBAL.max_allowed_packet' 2>/dev/null || echo 0)"
    if [ "${packet:-0}" -lt 67108864 ]; then
        echo "==> raising MariaDB max_allowed_packet from ${packet} to 64 MiB (session-sqlx payload tests)"
        mariadb -uroot -h127.0.0.1 -e 'SET GLOBAL max_allowed_packet = 67108864' \
            || service_missing MariaDB "could not raise max_allowed_packet to 64 MiB (session-sqlx needs >= 32M; set it in the server's config)"
    fi
fi
