#!/usr/bin/env bash
# Build and tag the testbed's images, each with its own version: a Python service's comes from
# services/<name>/pyproject.toml, the Kamailio image's (repo configs) from the root pyproject.
#
#   docker/build.sh [options] [IMAGE...]     IMAGE: sip-controller sip-client
#                                            scenario-controller csvgen analyzer kamailio
#                                            kamailio-debug (default: all)
#   --registry PREFIX   image name prefix (default: $IMAGE_REGISTRY or ims-testbed)
#   --push              push every tag after building it
#   --latest            also tag each image :latest
#   --platform LIST     passed to docker build (e.g. linux/amd64)
#   --dry-run           print the docker commands instead of running them (no engine needed)
#   --list              print the image references only, one per line (e.g. for kind load)
#
# Every build runs from the repository root as its context with BuildKit (cache mounts, the
# per-Dockerfile .dockerignore files next to each Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_IMAGES=(sip-controller sip-client scenario-controller csvgen analyzer kamailio kamailio-debug)

registry="${IMAGE_REGISTRY:-ims-testbed}"
push=0
latest=0
dry_run=0
list_only=0
platform=""
images=()

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --registry) registry="${2:?--registry needs a value}"; shift 2 ;;
    --push) push=1; shift ;;
    --latest) latest=1; shift ;;
    --platform) platform="${2:?--platform needs a value}"; shift 2 ;;
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
    sip-controller|sip-client|scenario-controller|csvgen|analyzer)
      version="$(project_version "services/$image/pyproject.toml")"
      echo "docker/$image.Dockerfile - $version $registry/$image:$version" ;;
    kamailio)
      version="$(project_version pyproject.toml)"
      echo "docker/kamailio.Dockerfile kamailio $version $registry/kamailio:$version" ;;
    kamailio-debug)
      version="$(project_version pyproject.toml)"
      echo "docker/kamailio.Dockerfile kamailio-debug $version $registry/kamailio:$version-debug" ;;
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

if ((!dry_run && !list_only)) && ! docker info >/dev/null 2>&1; then
  echo "build.sh: no Docker engine answers here (docker info failed); --dry-run prints the commands" >&2
  exit 1
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
  args=(env DOCKER_BUILDKIT=1 docker build --file "$dockerfile" --build-arg "SERVICE_VERSION=$version"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.created=$created")
  [[ "$target" != - ]] && args+=(--target "$target")
  [[ -n "$platform" ]] && args+=(--platform "$platform")
  for t in "${tags[@]}"; do args+=(--tag "$t"); done
  args+=(.)
  run "${args[@]}"
  if ((push)); then
    for t in "${tags[@]}"; do run docker push "$t"; done
  fi
done
