#!/usr/bin/env bash
# Entrypoint of the sip-client image: fills in what a pod only knows when it runs, with the
# service's own variable names, then execs the command (default: sip-client).
#
#   POD_ID              unset: the StatefulSet ordinal of the hostname, two digits
#                       (testbed-sip-client-7 -> 07), so every replica is a different pod
#   SIP_CLIENT_ADDRESS  unset: this container's first address (what the phones put in
#                       Via and Contact, so it must be the pod's own address, not 0.0.0.0)
#   OUTBOUND_PROXY      host:port where host is a name: replaced by its IPv4 address, waiting
#                       up to 120 s for it to resolve. The pod sends with uvloop, whose sendto
#                       takes addresses only; a Service's ClusterIP does not change.
set -euo pipefail

if [[ -z "${POD_ID:-}" ]]; then
  host="${HOSTNAME:-$(hostname)}"
  ordinal="${host##*-}"
  if [[ ! "$ordinal" =~ ^[0-9]+$ ]] || ((10#$ordinal > 99)); then
    echo "sip-client: POD_ID is unset and hostname '$host' does not end in an ordinal 0-99" >&2
    exit 2
  fi
  POD_ID="$(printf '%02d' "$((10#$ordinal))")"
  export POD_ID
fi

if [[ -z "${SIP_CLIENT_ADDRESS:-}" ]]; then
  SIP_CLIENT_ADDRESS="$(hostname -I | awk '{print $1}')"
  export SIP_CLIENT_ADDRESS
fi

if [[ -n "${OUTBOUND_PROXY:-}" ]]; then
  proxy_host="${OUTBOUND_PROXY%:*}"
  proxy_port="${OUTBOUND_PROXY##*:}"
  if [[ ! "$proxy_host" =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then
    address=""
    for _ in $(seq 1 120); do
      address="$(getent ahostsv4 "$proxy_host" | awk 'NR == 1 {print $1}')" || true
      [[ -n "$address" ]] && break
      sleep 1
    done
    if [[ -z "$address" ]]; then
      echo "sip-client: OUTBOUND_PROXY host '$proxy_host' did not resolve within 120 s" >&2
      exit 2
    fi
    OUTBOUND_PROXY="$address:$proxy_port"
    export OUTBOUND_PROXY
  fi
fi

exec "$@"
