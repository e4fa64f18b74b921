# Sourced by docker/*.sh and the cluster scripts: choose the container engine and, for podman,
# point it at the project's own configuration (never the host's /etc/containers files).
#
# After sourcing: ENGINE is "docker" (a Docker engine answers) or "podman"; engine_cmd runs it.
# TESTBED_CACHE_DIR (default ~/.cache/ims-testbed) holds podman's image store and base-image
# tarballs, outside any clone, so a fresh clone reuses images already built.
#
# Why a configuration of our own (measured on Debian 12 with cgroup v1, no systemd, root
# without CAP_SYS_RESOURCE): crun fails ("cgroups in hybrid mode not supported"), so runc;
# no systemd, so the cgroupfs manager and file events/logs; the default open-files ulimit
# (1048576) cannot be set without CAP_SYS_RESOURCE, so 20000 (the hard limit here).

TESTBED_CACHE_DIR="${TESTBED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ims-testbed}"
export TESTBED_CACHE_DIR

_podman_config() {
  local dir="$TESTBED_CACHE_DIR/containers"
  local run="${TESTBED_CONTAINERS_RUN_DIR:-/run/ims-testbed-containers}"
  mkdir -p "$dir/storage" "$dir/tmp" "$dir/volumes" "$run"
  local nofile
  nofile="$(ulimit -Hn)"
  [[ "$nofile" == unlimited || "$nofile" -gt 20000 ]] && nofile=20000
  cat >"$dir/containers.conf.new" <<EOF
# written by docker/engine.sh; do not edit (edit the script)
[containers]
cgroupns = "host"
log_driver = "k8s-file"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[network]
network_config_dir = "$dir/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$run/tmp"
static_dir = "$dir/static"
volume_path = "$dir/volumes"
EOF
  cat >"$dir/storage.conf.new" <<EOF
# written by docker/engine.sh; do not edit (edit the script)
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$run/storage"
EOF
  mkdir -p "$dir/networks"
  mv "$dir/containers.conf.new" "$dir/containers.conf"
  mv "$dir/storage.conf.new" "$dir/storage.conf"
  export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf"
}

if [[ -z "${ENGINE:-}" ]]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then
    ENGINE=podman
  else
    ENGINE=""
  fi
fi
if [[ "$ENGINE" == podman ]]; then
  _podman_config
fi
export ENGINE

engine_cmd() {
  if [[ -z "$ENGINE" ]]; then
    echo "no container engine: install podman (scripts/setup-containers.sh) or run a Docker engine" >&2
    return 1
  fi
  "$ENGINE" "$@"
}
