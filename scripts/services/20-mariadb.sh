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
