#!/usr/bin/env bash
# Set everything up, then run the checks and the whole test suite (unit and integration tests
# against real Kamailio, SIPp, SQLite and a private MariaDB server the tests start themselves).
# Extra arguments go to pytest, e.g. scripts/test.sh -k dmq -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy
uv run --frozen pytest "$@"
