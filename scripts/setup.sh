#!/usr/bin/env bash
# Install what the testbed needs on a Debian machine, as root, with only the package
# registries reachable: Debian packages (Kamailio, SIPp, tshark, MariaDB), uv, and the
# project's Python environment (.venv, from uv.lock). Safe to run again: it only adds
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  kamailio kamailio-mysql-modules kamailio-sqlite-modules kamailio-extra-modules
  kamailio-utils-modules kamailio-json-modules
  sip-tester tshark mariadb-server
  chromium
  python3 python3-venv ca-certificates iproute2 procps hostname
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# uv: the one on PATH, else a private copy from PyPI under .tools/
if ! command -v uv >/dev/null 2>&1; then
  if [[ ! -x .tools/uv/bin/uv ]]; then
    echo "setup: installing uv into .tools/uv"
    python3 -m venv .tools/uv
    .tools/uv/bin/pip install --quiet "uv>=0.13,<0.14"
  fi
  export PATH="$PWD/.tools/uv/bin:$PATH"
fi

# the machine's own Python 3.11+; uv must not try to download one (no network for that)
export UV_PYTHON_DOWNLOADS=never
uv sync --frozen --python python3 --quiet
echo "setup: ready ($(uv run --frozen python --version), $(kamailio -v | head -1 | cut -d' ' -f1-3), $(sipp -v 2>&1 | grep -o 'SIPp v[0-9.]*' | head -1))"
