#!/bin/bash
# The upstream image's probe, as far as the testbed uses it: --connect (the server answers over
# TCP: the entrypoint's init server runs with --skip-networking on the socket only, so a socket
# ping passed during init and clients got "lost connection" on the published port) and
# --innodb_initialized (InnoDB is up). Exit 0 only when every asked check passes.
set -uo pipefail
socket=/run/mysqld/mysqld.sock
host="${MARIADB_BIND_ADDRESS:-127.0.0.1}"
[[ "$host" == 0.0.0.0 ]] && host=127.0.0.1
for check in "$@"; do
  case "$check" in
    --connect)
      mariadb-admin --protocol=tcp --host="$host" --port=3306 --connect-timeout=3 ping \
        >/dev/null 2>&1 || exit 1 ;;
    --innodb_initialized)
      [[ "$(mariadb --socket="$socket" -N -e "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE='InnoDB' AND SUPPORT IN ('YES','DEFAULT')" 2>/dev/null)" == 1 ]] || exit 1 ;;
    *) echo "healthcheck.sh: unknown check $check" >&2; exit 2 ;;
  esac
done
exit 0
