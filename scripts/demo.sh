#!/usr/bin/env bash
# Set everything up and run the main job on the embedded local testbed: the demo experiment
# (experiments/demo.yaml: a step load through two CPU-limited Kamailio proxies, a few minutes),
# then a report in results/<name>-<time>/ (the last line printed). Extra arguments go to `testbed run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
exec uv run --frozen testbed run experiments/demo.yaml "$@"
