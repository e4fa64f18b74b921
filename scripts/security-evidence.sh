#!/usr/bin/env bash
# A short curl session against a local testbed showing its closed control plane (docs/security.md):
# 401 without the token, 403 with a wrong one and for addresses or names that are not this
# testbed's proxies, 200 with the token; Kamailio's /RPC likewise. Brings a testbed up in a
# state directory of its own, prints each command and its answer, and takes it down again.
#
#   scripts/security-evidence.sh
#
# Uses the default local addresses (sip-controller 127.0.0.1:8000, scenario controller :8001,
# LB 127.0.0.1:8060): run it when no other testbed is up.
set -euo pipefail
cd "$(dirname "$0")/.."

workdir="$(mktemp -d /tmp/ims-testbed-security.XXXXXX)"
export TESTBED_STATE_DIR="$workdir/state"
testbed() { uv run --frozen testbed "$@"; }
trap 'testbed down >/dev/null 2>&1 || true; rm -rf "$workdir"' EXIT

testbed up --proxies 2 --clients 1 --phones 2 >/dev/null
TOKEN="$(testbed token)"
controller=http://127.0.0.1:8000
scenario=http://127.0.0.1:8001
lb_rpc=http://127.0.0.1:8060/RPC

# show a command with the token as $TOKEN, run it, print the status and the body (shortened)
show() {
  local line="$" arg
  for arg in "$@"; do
    arg="${arg//$TOKEN/\$TOKEN}"
    if [[ "$arg" == *'$TOKEN'* ]]; then arg="\"$arg\""  # as typed: the shell expands it
    elif [[ "$arg" =~ [[:space:]\"\'\?\{] ]]; then arg="'$arg'"; fi
    line+=" $arg"
  done
  printf '%s\n' "$line"
  local out
  out="$("$@" -s -w '\n%{http_code}')"
  printf '%s %s\n\n' "HTTP $(tail -n1 <<<"$out")" "$(sed '$d' <<<"$out" | tr -d '\n' | cut -c1-240)"
}

printf '$ ls -l state.json proxies.json   # in $TESTBED_STATE_DIR\n'
(cd "$TESTBED_STATE_DIR" && ls -l state.json proxies.json | awk '{print $1, $NF}')
printf '$ stat -c %%a $TESTBED_STATE_DIR\n%s\n' "$(stat -c '%a' "$TESTBED_STATE_DIR")"
printf '$ cat proxies.json\n%s\n\n' "$(jq -c . "$TESTBED_STATE_DIR/proxies.json")"

# the load balancer's dispatcher set, one "URI FLAGS" per target
lb_set() {
  printf '$ curl -s -H "Authorization: Bearer $TOKEN" %s -d '"'"'{...dispatcher.list...}'"'"' | jq ...\n' "$lb_rpc"
  curl -s -H "Authorization: Bearer $TOKEN" "$lb_rpc" \
    -d '{"jsonrpc":"2.0","method":"dispatcher.list","id":1}' |
    jq -r '.result.RECORDS[].SET.TARGETS[].DEST | "\(.URI) \(.FLAGS)"'
  echo
}

echo "# reads stay open"
show curl "$controller/health"
lb_set
echo "# no token: 401"
show curl -X POST "$controller/proxies/sip-proxy-1/disable?grace_seconds=0"
show curl -X POST "$scenario/register"
show curl "$lb_rpc" -d '{"jsonrpc":"2.0","method":"dispatcher.list","id":1}'
echo "# a wrong token: 403"
show curl -X POST -H "Authorization: Bearer not-the-testbeds-token-0123" \
  "$controller/proxies/sip-proxy-1/disable?grace_seconds=0"
echo "# the token, but a foreign address or a proxy this testbed did not start: 403"
show curl -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"sip_address": "127.0.0.99:5060", "http_address": "127.0.0.99:8080"}' \
  "$controller/proxies/sip-proxy-0/enable"
show curl -X POST -H "Authorization: Bearer $TOKEN" "$controller/proxies/sip-proxy-5/enable"
echo "# the LB's set is unchanged"
lb_set
echo "# with the token: 200"
show curl -X POST -H "Authorization: Bearer $TOKEN" \
  "$controller/proxies/sip-proxy-1/disable?grace_seconds=0"
lb_set
show curl -X POST -H "Authorization: Bearer $TOKEN" "$controller/proxies/sip-proxy-1/enable"
show curl -X POST -H "Authorization: Bearer $TOKEN" "$scenario/register"
lb_set
