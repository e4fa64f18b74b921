#!/bin/bash
# The upstream image's probe, as far as the testbed uses it: --connect (the server answers on its
# socket) and --innodb_initialized (InnoDB is up). Exit 0 only when every asked check passes.
set -uo pipefail
socket=/run/mysqld/mysqld.sock
for check in "$@"; do
  case "$check" in
    --connect)
      mariadb-admin --socket="$socket" --connect-timeout=3 ping >/dev/null 2>&1 || exit 1 ;;
    --innodb_initialized)
      [[ "$(mariadb --socket="$socket" -N -e "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE='InnoDB' AND SUPPORT IN ('YES','DEFAULT')" 2>/dev/null)" == 1 ]] || exit 1 ;;
    *) echo "healthcheck.sh: unknown check $check" >&2; exit 2 ;;
  esac
done
exit 0
