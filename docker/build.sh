#!/usr/bin/env bash
# Build and tag the testbed's images, each with its own version: a Python service's comes from
# services/<name>/pyproject.toml, the Kamailio image's (repo configs) from the root pyproject.
#
#   docker/build.sh [options] [IMAGE...]     IMAGE: sip-controller sip-client
#                                            scenario-controller csvgen analyzer
#                                            policy-controller kamailio kamailio-debug
#                                            mariadb prometheus (default: all)
#   mariadb and prometheus are the database and metrics server from Debian's packages, for
#   compose and the chart where no registry serves the upstream images; tagged with their
#   Debian versions.
#   --registry PREFIX   image name prefix (default: $IMAGE_REGISTRY or ims-testbed)
#   --push              push every tag after building it
#   --latest            also tag each image :latest
#   --platform LIST     passed to the build (e.g. linux/amd64)
#   --base local|upstream
#                       local (default): Debian bookworm bases made here by docker/base-images.sh
#                       (no image registry needed); upstream: the Dockerfiles' defaults from
#                       Docker Hub (python:3.11-slim-bookworm, debian:bookworm-slim)
#   --dry-run           print the build commands instead of running them (no engine needed)
#   --list              print the image references only, one per line (e.g. for kind load)
#
# The engine is docker where one answers, else podman with the project's own configuration
# (docker/engine.sh). Every build runs from the repository root as its context with the
# per-Dockerfile ignore file next to each Dockerfile and cache mounts for uv, so a rebuild after
# a code change reuses the dependency layer.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_IMAGES=(sip-controller sip-client scenario-controller csvgen analyzer policy-controller
  kamailio kamailio-debug mariadb prometheus)

registry="${IMAGE_REGISTRY:-ims-testbed}"
push=0
latest=0
dry_run=0
list_only=0
platform=""
base=local
images=()

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --registry) registry="${2:?--registry needs a value}"; shift 2 ;;
    --push) push=1; shift ;;
    --latest) latest=1; shift ;;
    --platform) platform="${2:?--platform needs a value}"; shift 2 ;;
    --base) base="${2:?--base needs local or upstream}"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --list) list_only=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) images+=("$1"); shift ;;
  esac
done
((${#images[@]})) || images=("${ALL_IMAGES[@]}")
registry="${registry%/}"

# the [project] version of a pyproject.toml (tomllib: Python 3.11+, which the project needs)
project_version() {
  python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$1"
}

# image -> "dockerfile target version tag"
describe() {
  local image="$1" version
  case "$image" in
    sip-controller|sip-client|scenario-controller|csvgen|analyzer|policy-controller)
      version="$(project_version "services/$image/pyproject.toml")"
      echo "docker/$image.Dockerfile - $version $registry/$image:$version" ;;
    kamailio)
      version="$(project_version pyproject.toml)"
      echo "docker/kamailio.Dockerfile kamailio $version $registry/kamailio:$version" ;;
    kamailio-debug)
      version="$(project_version pyproject.toml)"
      echo "docker/kamailio.Dockerfile kamailio-debug $version $registry/kamailio:$version-debug" ;;
    mariadb) echo "docker/mariadb.Dockerfile - 10.11 $registry/mariadb:10.11" ;;
    prometheus) echo "docker/prometheus.Dockerfile - 2.42 $registry/prometheus:2.42" ;;
    *) echo "build.sh: unknown image '$image' (one of: ${ALL_IMAGES[*]})" >&2; return 2 ;;
  esac
}

for image in "${images[@]}"; do
  describe "$image" >/dev/null  # unknown names fail here, before anything is built
done

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

run() {
  if ((dry_run)); then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

case "$base" in local|upstream) ;; *) echo "build.sh: --base is local or upstream, not '$base'" >&2; exit 2 ;; esac
if ((dry_run)); then
  ENGINE="${ENGINE:-docker}"
elif ((!list_only)); then
  source docker/engine.sh
  if [[ -z "$ENGINE" ]]; then
    echo "build.sh: no container engine here (no Docker engine answers, no podman); --dry-run prints the commands" >&2
    exit 1
  fi
fi
base_args=()
if [[ "$base" == local ]]; then
  ((dry_run || list_only)) || docker/base-images.sh
  mapfile -t bases < <(docker/base-images.sh --names)
  base_args=(--build-arg "DEBIAN_IMAGE=${bases[0]}" --build-arg "PYTHON_IMAGE=${bases[1]}")
fi

for image in "${images[@]}"; do
  read -r dockerfile target version tag < <(describe "$image")
  tags=("$tag")
  if ((latest)); then
    suffix=""
    [[ "$image" == kamailio-debug ]] && suffix="-debug"
    tags+=("${tag%:*}:latest$suffix")
  fi
  if ((list_only)); then
    printf '%s\n' "${tags[@]}"
    continue
  fi
  if [[ "$ENGINE" == podman ]]; then
    # buildah reads no <Dockerfile>.dockerignore by itself; the host network reaches the
    # package registries exactly as the host does
    args=(podman build --network host --layers --format docker --ignorefile "$dockerfile.dockerignore")
  else
    args=(env DOCKER_BUILDKIT=1 docker build)
  fi
  args+=(--file "$dockerfile" --build-arg "SERVICE_VERSION=$version" "${base_args[@]}"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.created=$created")
  [[ "$target" != - ]] && args+=(--target "$target")
  [[ -n "$platform" ]] && args+=(--platform "$platform")
  for t in "${tags[@]}"; do args+=(--tag "$t"); done
  args+=(.)
  run "${args[@]}"
  if ((push)); then
    for t in "${tags[@]}"; do run "$ENGINE" push "$t"; done
  fi
done
