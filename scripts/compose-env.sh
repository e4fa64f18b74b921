#!/usr/bin/env bash
# Write the secrets of the compose project (docker-compose.yml) into an .env file, mode 0600:
#
#   scripts/compose-env.sh [FILE]      # FILE: .env beside docker-compose.yml by default
#
# docker compose and podman-compose read .env from the compose file's directory; the compose
# file refuses to start without these variables. An existing file is never overwritten (its
# database password is the one MariaDB's volume was created with): delete it, and the volume
# (docker compose down -v), to draw new secrets.
set -euo pipefail

target="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.env}"
if [[ -e "$target" ]]; then
  echo "compose-env.sh: $target exists, kept as it is" >&2
  exit 0
fi

# N random letters and digits from the kernel's CSPRNG (no shell or URL metacharacters: the
# values go into DATABASE_URL and compose's interpolation as they are)
random() {
  local pool
  pool="$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')"
  printf '%s' "${pool:0:$1}"
}

umask 077
# noclobber: the file is created exclusively, so a concurrent run cannot be overwritten either
set -o noclobber
cat >"$target" <<ENV
# Secrets of the compose project, written by scripts/compose-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ).
# Keep this file private (mode 0600); docs/kubernetes.md, "Docker Compose".
# the bearer token of every mutating API call (sip-controller, scenario-controller, csvgen,
# sip-client, Kamailio's /RPC; the analyzers serve only reads)
API_TOKEN=$(random 48)
# MariaDB's testbed user (DATABASE_URL of every service)
DB_PASSWORD=$(random 32)
# the proxies' digest secret (nonces)
AUTH_SECRET=$(random 32)
# every subscriber's password: this prefix, a dash and the user name
SUBSCRIBER_PASSWORD_TEMPLATE=$(random 24)-{username}
# Grafana's admin (profile grafana; user admin)
GRAFANA_ADMIN_PASSWORD=$(random 24)
# the address the published ports bind to; 127.0.0.1 unless you mean to expose the testbed
# BIND_ADDRESS=127.0.0.1
ENV
chmod 600 "$target"
echo "compose-env.sh: wrote $target"
