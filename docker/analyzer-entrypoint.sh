#!/usr/bin/env bash
# Entrypoint of the analyzer image. As a sidecar it shares the proxy's network namespace, so
# the proxy's address is this container's own: with ANALYZER_PROXY_ADDRESS unset it becomes
# the first address of this container and port 5060 (the service's default is local mode's
# 127.0.1.1:5060). The chart sets it from the pod IP; compose relies on this.
set -euo pipefail

if [[ -z "${ANALYZER_PROXY_ADDRESS:-}" ]]; then
  ANALYZER_PROXY_ADDRESS="$(hostname -I | awk '{print $1}'):5060"
  export ANALYZER_PROXY_ADDRESS
fi

exec "$@"
