#!/usr/bin/env bash
# sip-core compiled by mypyc, as the sip-client image runs it: build the compiled wheel from the
# checkout's sources into a venv of its own (.venv-mypyc, outside the tracked files; the dev
# .venv stays pure Python) and run sip-core's and sip-client's tests against it. Fails if the
# modules loaded are .py files. Needs a C compiler and Python's headers (installed here, as
# root, when missing). scripts/test.sh runs it after the main suite.
#
#   scripts/mypyc-tests.sh [pytest args]
#
# Cold (no compiled wheel in uv's cache) the build takes about a minute of CPU; later runs
# reuse the wheel until a file under libs/sip-core/src, its pyproject.toml or setup.py changes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
if ! command -v cc >/dev/null 2>&1 || [[ ! -f "$include/Python.h" ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "mypyc-tests.sh: needs a C compiler and $include/Python.h (gcc libc6-dev python3-dev)" >&2
    exit 1
  fi
  echo "mypyc-tests.sh: installing gcc libc6-dev python3-dev"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    gcc libc6-dev python3-dev
fi

export UV_PROJECT_ENVIRONMENT="$PWD/.venv-mypyc" SIP_CORE_MYPYC=1
# sip-client and what it needs, nothing of the dev group; not editable (as in the image), so
# sip-core comes from its compiled wheel. uv reuses a member's cached wheel until its
# pyproject.toml changes: the other members are rebuilt every time (uv_build, well under a
# second each), sip-core (a minute of CPU) when its sources differ from the last build's.
rebuild=(--reinstall-package sip-client --reinstall-package service-kit
  --reinstall-package api-token --reinstall-package testbed-messages)
stamp="$UV_PROJECT_ENVIRONMENT/sip-core.sources"
sources="$(cat libs/sip-core/pyproject.toml libs/sip-core/setup.py libs/sip-core/src/sip_core/*.py \
  | sha256sum)"
[[ "$(cat "$stamp" 2>/dev/null)" == "$sources" ]] || rebuild+=(--reinstall-package sip-core)
uv sync --frozen --no-dev --no-editable --inexact --package sip-client --python python3 --quiet \
  "${rebuild[@]}"
echo "$sources" >"$stamp"
# the test tools at the versions uv.lock pins
constraints="$UV_PROJECT_ENVIRONMENT/constraints.txt"
uv export --frozen --all-groups --all-packages --no-hashes --no-emit-workspace --quiet \
  --output-file "$constraints"
uv pip install --quiet --python "$UV_PROJECT_ENVIRONMENT/bin/python" --constraints "$constraints" \
  pytest pytest-timeout hypothesis httpx

"$UV_PROJECT_ENVIRONMENT/bin/python" - <<'PY'
import sip_core.build_info as b, sip_core.message as m
assert b.compiled(), f"sip_core is not compiled: {m.__file__}"
print(f"mypyc-tests.sh: {m.__file__}")
PY
SIP_CORE_EXPECT_COMPILED=1 "$UV_PROJECT_ENVIRONMENT/bin/python" -m pytest \
  libs/sip-core/tests services/sip-client/tests -q -p no:cacheprovider "$@"
