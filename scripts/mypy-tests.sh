#!/usr/bin/env bash
# mypy (pyproject.toml's strict settings) over the test code: tests/ and every member's tests/.
# One run per directory: every member has a conftest.py and several share test module names
# (test_config.py, ...), which one mypy run cannot hold. Each run makes its directory's parent
# (or tests/ itself) a package base, so a member's tests are "tests.*" and tests/unit/test_x.py
# is "unit.test_x", "support" what `from support import` finds: the names the test override
# in pyproject.toml lists (unannotated test functions allowed, their bodies checked).
#
#   scripts/mypy-tests.sh [DIR...]   one line per directory; fails if any run fails
set -uo pipefail
cd "$(dirname "$0")/.."
if (($#)); then dirs=("$@"); else dirs=(tests libs/*/tests services/*/tests); fi
failed=0
for dir in "${dirs[@]}"; do
  dir=${dir%/}
  if [[ ! -d $dir ]]; then
    echo "mypy-tests.sh: no such directory: $dir" >&2
    exit 2
  fi
  # tests/ is its own base (pytest's pythonpath; helm/: a deploy test imports fetch_results.py
  # from there); a member's tests/ hangs off the member.
  if [[ $dir == tests ]]; then base=tests:helm; else base=$(dirname "$dir"); fi
  start=$SECONDS
  if out=$(MYPYPATH=$base uv run --frozen mypy "$dir" 2>&1); then
    printf 'mypy-tests.sh: %-36s ok %4d s\n' "$dir" $((SECONDS - start))
  else
    failed=1
    printf '%s\n' "$out"
    printf 'mypy-tests.sh: %-36s FAILED (%s) %4d s\n' "$dir" "$(tail -n 1 <<<"$out")" \
      $((SECONDS - start))
  fi
done
exit $failed
