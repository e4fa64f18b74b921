#!/usr/bin/env bash
# Set everything up, then run the checks and the whole test suite: unit and integration tests
# against real Kamailio, SIPp, SQLite and a private MariaDB server the tests start themselves,
# every image built and started with podman, docker-compose.yml brought up, and a real
# single-node Kubernetes cluster with the Helm chart installed and exercised (tests/deploy/cluster).
# Extra arguments go to pytest, e.g. scripts/test.sh -k dmq -x
#
#   scripts/test.sh --unit [pytest args]   the fast part only (under a minute once set up): the
#       members' tests (libs/, services/) and tests/unit/ but those marked slow, on two workers;
#       no lint, no images, no cluster, no compiled sip-core
#
# The tests live in libs/*/tests and services/*/tests (each member's own), tests/unit (the CLI
# and runner's logic), tests/integration (real Kamailio, SIPp, MariaDB, Chromium; marker
# `integration`) and tests/deploy (images, compose, the chart on a cluster; marker `deploy`).
#
# One-time builds are cached outside the clone (~/.cache/ims-testbed, TESTBED_CACHE_DIR): the
# Debian base images, the image layers, the Kubernetes binaries (docs/kubernetes.md has the
# times with an empty and a full cache).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf 'test.sh: %-44s %5d s\n' "$1" "$2"; }
if [[ "${1:-}" == "--unit" ]]; then
  shift
  scripts/setup.sh >/dev/null
  source scripts/env.sh
  # two workers (pytest-xdist): the tests are independent and the machine has two cores;
  # the fuzz targets try 50 examples each here (300 in the whole suite: docs/fuzzing.md)
  export FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-50}"
  exec uv run --frozen pytest libs services tests/unit -m "not integration and not deploy and not slow" \
    -n 2 -q -p no:cacheprovider "$@"
fi
start=$SECONDS
scripts/setup.sh --tests
step "setup (packages, Python env, helm)" $((SECONDS - start))
start=$SECONDS
scripts/setup-containers.sh
step "container tools and images" $((SECONDS - start))
start=$SECONDS
cluster/build/build.sh >/dev/null
step "Kubernetes binaries" $((SECONDS - start))
source scripts/env.sh
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy
scripts/mypy-tests.sh  # the test code too, one mypy run per test directory
uv run --frozen lint-imports --no-cache  # the import rules (pyproject.toml)
# sip-core compiled by mypyc, as the sip-client image runs it: its own tests and sip-client's in
# a venv of their own (.venv-mypyc); before the suite, whose image-build replay compiles too
start=$SECONDS
scripts/mypyc-tests.sh
step "compiled sip-core tests (mypyc)" $((SECONDS - start))
# The tests in two runs that split them by marker. The first takes what measures no time (the
# members' tests and tests/unit, the slow ones included) on two workers, 350 s instead of about
# 600 s here; the second takes the real runs (integration, deploy) and the few unit tests that
# assert a scheduler's punctuality (timing) one at a time, as their timings need. Both always
# run, so one log names every failure; a run that the arguments leave empty (exit 5, e.g. -k
# matching only integration tests) is no failure. The slowest tests are named in the log: what
# to shorten when CI nears its 90 minutes.
status=0
run_part() {  # MARKER [pytest args...]
  local part=$1 start=$SECONDS rc=0
  shift
  uv run --frozen pytest -m "$part" --durations=30 "$@" || rc=$?
  step "tests: $part" $((SECONDS - start))
  if ((rc != 0 && rc != 5)); then status=$rc; fi
}
serial="integration or deploy or timing"  # the second part; the first is all the rest
run_part "not ($serial)" -n 2 "$@"
run_part "$serial" "$@"
exit "$status"
