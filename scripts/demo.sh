#!/usr/bin/env bash
# Set everything up and run the main job on the embedded local testbed: bring the SIP system
# up (load balancer, 2 Kamailio proxies, sip-controller, SQLite), push SIPp calls through it,
# report, and stop everything. Extra arguments go to `testbed demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
exec uv run --frozen testbed demo "$@"
