#!/usr/bin/env bash
# Install the container tooling and build every image, as root on Debian 12. Safe to run
# again: it installs only what is missing, and rebuilds reuse the layer cache (seconds).
#
#   scripts/setup-containers.sh [--no-build]
#
# podman (with runc, CNI plugins and dnsname for compose networks), buildah and mmdebstrap for
# the images (docker/base-images.sh, docker/build.sh); containerd and etcd for the single-node
# cluster (cluster/). podman-compose is not taken from Debian: its 1.0.3 mishandles
# `network_mode: service:` and healthcheck arrays; the project's venv has 1.6 (uv.lock).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  containerd runc podman buildah mmdebstrap uidmap iptables conntrack
  containernetworking-plugins slirp4netns fuse-overlayfs etcd-server etcd-client
  golang-github-containernetworking-plugin-dnsname dnsmasq-base
)

build=1
case "${1:-}" in
  "") ;;
  --no-build) build=0 ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup-containers: unknown option $1" >&2; exit 2 ;;
esac

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-containers: installing ${missing[*]} needs root" >&2
    exit 1
  fi
  echo "setup-containers: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
((build)) || exit 0

# one build per image, so each one's time is its own (build.sh itself prints none)
start=$SECONDS
docker/base-images.sh
printf 'setup-containers: %-22s %4d s\n' "base images" "$((SECONDS - start))"
total=0
for tag in $(docker/build.sh --list); do
  name="${tag##*/}"
  image="${name%%:*}"
  [[ "$name" == *-debug ]] && image+="-debug"
  start=$SECONDS
  if ! log="$(docker/build.sh "$image" 2>&1)"; then
    printf '%s\n' "$log" | tail -40 >&2
    echo "setup-containers: building $image failed" >&2
    exit 1
  fi
  elapsed=$((SECONDS - start))
  total=$((total + elapsed))
  printf 'setup-containers: %-22s %4d s  %s\n' "$image" "$elapsed" "$tag"
done
printf 'setup-containers: %-22s %4d s\n' "all images" "$total"
