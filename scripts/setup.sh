#!/usr/bin/env bash
# Install what the testbed needs on a Debian machine, as root, with only the package
# registries reachable. Safe to run again: it only adds what is missing.
#
#   scripts/setup.sh           what running experiments needs: Kamailio, SIPp, tshark, MariaDB,
#                              Prometheus (Debian packages), uv (PyPI), the Python environment
#                              (.venv, from uv.lock)
#   scripts/setup.sh --tests   also what only the tests and the Kubernetes path need: Chromium
#                              (the web panel's browser tests), gcc and Python's headers (the
#                              mypyc-compiled sip-core's tests) and helm (built with Go)
set -euo pipefail
cd "$(dirname "$0")/.."

tests=false
case "${1:-}" in
  "") ;;
  --tests) tests=true ;;
  -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup: unknown option '$1' (expected --tests or --help)" >&2; exit 2 ;;
esac

APT_PACKAGES=(
  kamailio kamailio-mysql-modules kamailio-sqlite-modules kamailio-extra-modules
  kamailio-utils-modules kamailio-json-modules
  sip-tester tshark mariadb-server prometheus
  python3 python3-venv ca-certificates iproute2 procps hostname
)
if $tests; then
  # chromium: the web panel's browser tests; gcc and the headers: the mypyc-compiled sip-core
  # that scripts/mypyc-tests.sh builds and tests (the images compile it the same way)
  APT_PACKAGES+=(chromium gcc libc6-dev python3-dev)
fi

install_helm() {
  # helm, for the deployment tests and `testbed cluster` / `run --kubeconfig`: built from the
  # Go module proxy with this machine's Go and cached in .tools/bin (with the version it was
  # built as), so later runs skip the build. helm v3.22.0 needs Go 1.26; with an older Go
  # (Debian 12's golang-go is 1.19) the newest helm that builds with it is taken instead:
  # v3.13.3 (go.mod: go 1.19). Both were built and used here. GOTOOLCHAIN=local: Go must
  # not fetch a newer toolchain for itself.
  HELM_CHOICES=("v3.22.0 1.26" "v3.13.3 1.19")
  go_bin="$(command -v go || true)"
  [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
  if [[ -z "$go_bin" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "setup: Go is missing (needed to build helm) and installing golang-go needs root" >&2
      exit 1
    fi
    echo "setup: installing golang-go (to build helm)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go
    go_bin=/usr/bin/go
  fi
  go_version="$(GOTOOLCHAIN=local "$go_bin" env GOVERSION)"
  go_version="${go_version#go}"
  helm_version=""
  for choice in "${HELM_CHOICES[@]}"; do
    read -r candidate needs <<<"$choice"
    if [[ "$(printf '%s\n%s\n' "$needs" "$go_version" | sort -V | head -1)" == "$needs" ]]; then
      helm_version="$candidate"
      break
    fi
  done
  if [[ -z "$helm_version" ]]; then
    echo "setup: Go $go_version is too old to build helm (needs 1.19 or newer)" >&2
    exit 1
  fi
  if [[ ! -x .tools/bin/helm || "$(cat .tools/bin/helm.version 2>/dev/null)" != "$helm_version" ]]; then
    echo "setup: building helm $helm_version with Go $go_version into .tools/bin (a few minutes)"
    mkdir -p .tools/bin
    rm -f .tools/bin/helm.version
    GOBIN="$PWD/.tools/bin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
      nice -n 19 "$go_bin" install "helm.sh/helm/v3/cmd/helm@$helm_version"
    echo "$helm_version" >.tools/bin/helm.version
  fi
}

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

if $tests; then
  install_helm
fi
echo "setup: ready ($(uv run --frozen python --version), $(kamailio -v | head -1 | cut -d' ' -f1-3), $(sipp -v 2>&1 | grep -o 'SIPp v[0-9.]*' | head -1))"
