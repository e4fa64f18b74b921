#!/usr/bin/env bash
# Make the Debian base images the Dockerfiles build on, here, from the apt sources this machine
# already uses (no image registry needed): mmdebstrap --variant=minbase of bookworm, imported
# into the engine as
#   localhost/ims-testbed/debian:bookworm          (the Kamailio, MariaDB and Prometheus images)
#   localhost/ims-testbed/debian-python:bookworm   (+ python3, python3-venv, ca-certificates)
# The host's locally added CA certificates (those update-ca-certificates installs from
# /usr/local/share/ca-certificates) go into both, so pip and uv inside a build reach the package
# index exactly as the host does (e.g. through a TLS-inspecting proxy).
#
#   docker/base-images.sh [--force]     --force: remake them even if present
#   docker/base-images.sh --names       print the two image names (debian, then python)
#
# Each tarball is kept in $TESTBED_CACHE_DIR/base-images, keyed by the apt sources and
# the CA certificates, so a later run (another clone, CI) imports instead of bootstrapping.
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/engine.sh

DEBIAN_IMAGE=localhost/ims-testbed/debian:bookworm
PYTHON_IMAGE=localhost/ims-testbed/debian-python:bookworm

if [[ "${1:-}" == --names ]]; then
  echo "$DEBIAN_IMAGE"
  echo "$PYTHON_IMAGE"
  exit 0
fi
force=0
[[ "${1:-}" == --force ]] && force=1

have_image() { engine_cmd image exists "$1" 2>/dev/null || engine_cmd image inspect "$1" >/dev/null 2>&1; }

if ((!force)) && have_image "$DEBIAN_IMAGE" && have_image "$PYTHON_IMAGE"; then
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "base-images: mmdebstrap is missing (scripts/setup-containers.sh installs it)" >&2; exit 1; }

# the apt sources of this machine: deb822 files and the one-line list, Debian's suites only
sources="$(mktemp)"
trap 'rm -f "$sources"' EXIT
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f "$f" ]] && grep -q 'debian' "$f" && { cat "$f"; echo; } >>"$sources"
done
if [[ -f /etc/apt/sources.list ]]; then
  grep -E '^\s*deb\s.*debian' /etc/apt/sources.list >>"$sources" || true
fi
if [[ ! -s "$sources" ]]; then
  printf '%s\n' "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >"$sources"
fi
cas=(/usr/local/share/ca-certificates/*.crt)
[[ -e "${cas[0]}" ]] || cas=()

key="$(cat "$sources" "${cas[@]}" | sha256sum | cut -c1-12)"
store="$TESTBED_CACHE_DIR/base-images"
mkdir -p "$store"

# copy the host's extra CAs in and trust them (the hook runs on the host, with $1 = the rootfs)
ca_hook='mkdir -p "$1/usr/local/share/ca-certificates"'
for ca in "${cas[@]}"; do
  ca_hook+=" && cp '$ca' \"\$1/usr/local/share/ca-certificates/\""
done
ca_hook+=' && chroot "$1" update-ca-certificates >/dev/null 2>&1'

make_tar() {  # NAME PACKAGES
  local out="$store/$1-$key.tar"
  if [[ ! -s "$out" ]]; then
    rm -f "$store/$1-"*.tar
    local start=$SECONDS
    mmdebstrap --quiet --format=tar --variant=minbase --include="$2" \
      --customize-hook="$ca_hook" \
      --customize-hook='rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*.bin' \
      bookworm "$out.partial" "$sources"
    mv "$out.partial" "$out"
    echo "base-images: $1 bootstrapped in $((SECONDS - start)) s ($(du -h "$out" | cut -f1))" >&2
  fi
  echo "$out"
}

debian_tar="$(make_tar debian ca-certificates)"
python_tar="$(make_tar debian-python ca-certificates,python3,python3-venv)"
engine_cmd import --quiet --change 'CMD ["/bin/bash"]' "$debian_tar" "$DEBIAN_IMAGE" >/dev/null
engine_cmd import --quiet --change 'CMD ["/bin/bash"]' "$python_tar" "$PYTHON_IMAGE" >/dev/null
echo "base-images: $DEBIAN_IMAGE and $PYTHON_IMAGE ready" >&2
