#!/bin/sh
# Start one Kamailio network function in the foreground: sip-proxy or sip-loadb.
#
#   entrypoint.sh sip-proxy|sip-loadb [extra kamailio options]
#
# The same script serves local mode (testbed up), the container image and the Helm chart:
# it fills in defaults for every setting the configs read from the environment, derives
# Kamailio's DB URL from the services' DATABASE_URL, and execs kamailio so that signals reach it.
set -eu

role="${1:?usage: entrypoint.sh sip-proxy|sip-loadb [kamailio options]}"
shift
case "$role" in
  sip-proxy|sip-loadb) ;;
  *) echo "entrypoint.sh: unknown role '$role' (expected sip-proxy or sip-loadb)" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "$0")" && pwd)"
config_dir="${KAMAILIO_CONFIG_DIR:-$here}"

first_address() { hostname -I 2>/dev/null | awk '{print $1}'; }

: "${SIP_DOMAIN:=testbed.local}"
: "${SIP_ADDRESS:=$(first_address)}"
: "${SIP_ADDRESS:=127.0.0.1}"
: "${SIP_PORT:=5060}"
: "${DMQ_PORT:=5061}"
: "${HTTP_PORT:=8080}"
: "${DATABASE_URL:=sqlite:////var/lib/testbed/testbed.sqlite}"
: "${AUTH_SECRET:=ims-testbed-shared-secret}"
: "${AUTH_ALGORITHM:=MD5}"
: "${KAMAILIO_CHILDREN:=4}"
: "${KAMAILIO_LOG_LEVEL:=1}"
# a proxy keeps every transaction in shared memory for its wait time (5 s): at 1000 calls/s
# that is about 10,000 of them, which 64 MB does not hold. Pages are only used as needed.
if [ "$role" = sip-proxy ]; then : "${KAMAILIO_SHM_MB:=256}"; else : "${KAMAILIO_SHM_MB:=64}"; fi
: "${KAMAILIO_PKG_MB:=8}"
: "${REGISTER_MAX_EXPIRES:=3600}"
# SIP URI of the load balancer for requests toward UAs; empty: straight to the UA (the paper's path)
: "${OUTBOUND_PROXY:=}"
: "${KAMAILIO_RUN_DIR:=/run/kamailio-$role}"
# API_TOKEN (optional, passed through as is): when set, /RPC answers only
# `Authorization: Bearer $API_TOKEN`; when unset, only clients in 127.0.0.0/8 (the cfgs' RPC_ALLOWED)
: "${KAMAILIO_CTL_SOCKET:=unix:$KAMAILIO_RUN_DIR/kamailio_ctl}"

: "${SIP_LISTEN:=udp:$SIP_ADDRESS:$SIP_PORT}"
: "${DMQ_LISTEN:=udp:$SIP_ADDRESS:$DMQ_PORT}"
: "${HTTP_LISTEN:=tcp:$SIP_ADDRESS:$HTTP_PORT}"
: "${DMQ_SERVER_ADDRESS:=sip:$SIP_ADDRESS:$DMQ_PORT}"
# the first proxy notifies itself; others are given a running peer (or a headless Service name)
: "${DMQ_NOTIFICATION_ADDRESS:=$DMQ_SERVER_ADDRESS}"

# DATABASE_URL is in SQLAlchemy form; Kamailio wants mysql://... and sqlite:///abs/path
if [ -z "${KAMAILIO_DB_URL:-}" ]; then
  case "$DATABASE_URL" in
    sqlite:////*) KAMAILIO_DB_URL="sqlite://${DATABASE_URL#sqlite:///}" ;;
    mysql+pymysql://*) KAMAILIO_DB_URL="mysql://${DATABASE_URL#mysql+pymysql://}" ;;
    mysql://*|mariadb://*) KAMAILIO_DB_URL="mysql://${DATABASE_URL#*://}" ;;
    *) echo "entrypoint.sh: DATABASE_URL '$DATABASE_URL' is neither sqlite:////absolute/path nor mysql+pymysql://" >&2; exit 2 ;;
  esac
fi
KAMAILIO_DB_URL="${KAMAILIO_DB_URL%%\?*}"

export SIP_DOMAIN SIP_LISTEN DMQ_LISTEN HTTP_LISTEN DMQ_PORT DMQ_SERVER_ADDRESS \
  DMQ_NOTIFICATION_ADDRESS KAMAILIO_DB_URL AUTH_SECRET AUTH_ALGORITHM KAMAILIO_CHILDREN \
  KAMAILIO_LOG_LEVEL REGISTER_MAX_EXPIRES KAMAILIO_CTL_SOCKET OUTBOUND_PROXY

mkdir -p "$KAMAILIO_RUN_DIR"
exec kamailio -DD -E -f "$config_dir/$role.cfg" -Y "$KAMAILIO_RUN_DIR" \
  -P "$KAMAILIO_RUN_DIR/kamailio.pid" -m "$KAMAILIO_SHM_MB" -M "$KAMAILIO_PKG_MB" "$@"
