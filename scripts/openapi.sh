#!/usr/bin/env bash
# Regenerate what is generated from the services' code, and commit the result with the change:
#
#   scripts/openapi.sh            # write services/<name>/openapi.json and the variables'
#                                 # tables in docs/configuration.md
#   scripts/openapi.sh --check    # only check (exit 1 naming what is stale), as the tests do
#
# Each document comes from the service's create_app() with its default settings (the
# environment is ignored), keys sorted: a route or a setting added shows as a small diff.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
status=0
uv run --frozen python -m service_kit.openapi "$@" || status=$?
uv run --frozen python -m service_kit.envdoc "$@" || status=$?
exit "$status"
