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

fail() { echo "entrypoint.sh: $*" >&2; exit 2; }

# %XX escapes decoded (SQLAlchemy URLs percent-encode user and password; Kamailio takes them raw)
percent_decode() {
  printf '%s' "$1" | LC_ALL=C awk '{
    out = ""; s = $0; hex = "0123456789abcdef"
    while ((i = index(s, "%")) > 0) {
      h = tolower(substr(s, i + 1, 2))
      if (h ~ /^[0-9a-f][0-9a-f]$/) {
        hi = index(hex, substr(h, 1, 1)); lo = index(hex, substr(h, 2, 1))
        out = out substr(s, 1, i - 1) sprintf("%c", (hi - 1) * 16 + lo - 1); s = substr(s, i + 3) }
      else { out = out substr(s, 1, i); s = substr(s, i + 1) }
    }
    printf "%s", out s
  }'
}

# The testbed's one translation of DATABASE_URL (SQLAlchemy form, what the services read) into
# the URL of Kamailio's db_sqlite / db_mysql: sqlite:////abs/path -> sqlite:///abs/path;
# mysql[+driver]:// and mariadb[+driver]:// -> mysql://user:password@host[:port]/db with user
# and password decoded (db_mysql finds the last '@', so '@', ':' and '/' in a password are
# fine) and any ?query dropped. Errors name the scheme, never the URL (it holds a password).
# Tested against a table of cases in tests/unit/test_kamailio_db_url.py.
kamailio_db_url() {
  case "$1" in
    sqlite:////*)
      path="${1#sqlite:///}"
      kamailio_url="sqlite://${path%%\?*}" ;;
    sqlite:*)
      fail "DATABASE_URL '$1': Kamailio needs an absolute SQLite path (sqlite:////absolute/path.sqlite)" ;;
    mysql://*|mysql+*://*|mariadb://*|mariadb+*://*)
      rest="${1#*://}"
      auth=""
      case "$rest" in
        *@*)
          # SQLAlchemy percent-encodes '@' in user and password: the first '@' ends them
          userinfo="${rest%%@*}"
          rest="${rest#*@}"
          auth="$(percent_decode "${userinfo%%:*}")"
          case "$userinfo" in *:*) auth="$auth:$(percent_decode "${userinfo#*:}")" ;; esac
          auth="$auth@" ;;
      esac
      rest="${rest%%\?*}"
      case "$rest" in
        */?*) ;;
        *) fail "DATABASE_URL (${1%%://*}://...) names no database: mysql+pymysql://user:password@host:port/database" ;;
      esac
      kamailio_url="mysql://$auth$rest" ;;
    *://*)
      fail "DATABASE_URL: Kamailio cannot use database '${1%%://*}' (use sqlite:////absolute/path.sqlite or mysql+pymysql://user:password@host:port/database)" ;;
    *)
      fail "DATABASE_URL is not a database URL (use sqlite:////absolute/path.sqlite or mysql+pymysql://user:password@host:port/database)" ;;
  esac
  # the cfgs get the URL as a quoted string (#!defenvs), where '"' ends it and '\' escapes
  case "$kamailio_url" in
    *'"'*|*'\'*) fail "DATABASE_URL: a '\"' or '\\' (decoded) in it cannot reach Kamailio's config; choose a database password without them" ;;
  esac
  echo "$kamailio_url"
}

# KAMAILIO_DB_URL, when given, is already in Kamailio's form and used as is (less any ?query)
if [ -n "${KAMAILIO_DB_URL:-}" ]; then
  KAMAILIO_DB_URL="${KAMAILIO_DB_URL%%\?*}"
else
  KAMAILIO_DB_URL="$(kamailio_db_url "$DATABASE_URL")" || exit $?
fi

export SIP_DOMAIN SIP_LISTEN DMQ_LISTEN HTTP_LISTEN DMQ_PORT DMQ_SERVER_ADDRESS \
  DMQ_NOTIFICATION_ADDRESS KAMAILIO_DB_URL AUTH_SECRET AUTH_ALGORITHM KAMAILIO_CHILDREN \
  KAMAILIO_LOG_LEVEL REGISTER_MAX_EXPIRES KAMAILIO_CTL_SOCKET OUTBOUND_PROXY

mkdir -p "$KAMAILIO_RUN_DIR"
exec kamailio -DD -E -f "$config_dir/$role.cfg" -Y "$KAMAILIO_RUN_DIR" \
  -P "$KAMAILIO_RUN_DIR/kamailio.pid" -m "$KAMAILIO_SHM_MB" -M "$KAMAILIO_PKG_MB" "$@"
