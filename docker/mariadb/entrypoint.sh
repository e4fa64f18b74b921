#!/bin/bash
# First start of an empty data directory: initialise it, then create the database and user the
# MARIADB_* variables name (the upstream image's interface), through the socket only, before
# the server listens on the network. Then exec mariadbd in the foreground.
set -euo pipefail
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

if [[ ! -d "$datadir/mysql" ]]; then
  # the OS user running the server (mysql, uid 10001) gets a socket-authenticated admin account,
  # which this script and healthcheck.sh use
  mariadb-install-db --no-defaults --datadir="$datadir" --skip-test-db --auth-root-socket-user=mysql \
    --auth-root-authentication-method=socket >/dev/null
  mariadbd --no-defaults --datadir="$datadir" --socket="$socket" --skip-networking &
  pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --socket="$socket" ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  root_password="${MARIADB_ROOT_PASSWORD:-}"
  if [[ -z "$root_password" && -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]]; then
    root_password="$(head -c 24 /dev/urandom | base64)"
    echo "mariadb-entrypoint: GENERATED ROOT PASSWORD: $root_password"
  fi
  {
    if [[ -n "$root_password" ]]; then
      echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY $(sql_quote "$root_password");"
      echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    fi
    if [[ -n "${MARIADB_DATABASE:-}" ]]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/}\`;"
    fi
    if [[ -n "${MARIADB_USER:-}" ]]; then
      echo "CREATE USER IF NOT EXISTS $(sql_quote "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_quote "${MARIADB_PASSWORD:-}");"
      [[ -n "${MARIADB_DATABASE:-}" ]] &&
        echo "GRANT ALL ON \`${MARIADB_DATABASE//\`/}\`.* TO $(sql_quote "$MARIADB_USER")@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket"
  mariadb-admin --socket="$socket" shutdown
  wait "$pid" || true
fi
exec mariadbd --no-defaults --datadir="$datadir" --socket="$socket" --port=3306 \
  --bind-address="${MARIADB_BIND_ADDRESS:-0.0.0.0}" --skip-name-resolve \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci "$@"
