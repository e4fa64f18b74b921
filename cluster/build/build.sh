#!/usr/bin/env bash
# Build the single-node cluster's binaries from the Go module proxy, once, into a cache outside
# the clone keyed by what they are built from (this module's go.mod/go.sum and the Go version):
# Kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
# kubectl), CoreDNS and helm in one module, so they share one dependency graph and one build
# cache; metrics-server v0.9.0 from its own module (built against Kubernetes 0.36 libraries, its
# generated OpenAPI names are not found by 0.37's: the 0.37 build panics at start); the pause
# binary. prometheus-adapter v0.12.0, the newest, does not build against Kubernetes 1.37's
# libraries (its custom-metrics-apiserver needs 1.30's; docs/kubernetes.md). Prints the
# binaries' directory on its last line.
#
#   cluster/build/build.sh [--print-dir]   --print-dir: print the directory only, build nothing
#
# Kubernetes' own go.mod replaces its staging modules (k8s.io/api, client-go, ...) with local
# paths, so it cannot be `go install`ed; this wrapper module requires k8s.io/kubernetes and
# replaces each staging module with its published v0.x twin instead (docs/kubernetes.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

K8S_VERSION=v1.37.2
HELM_VERSION=v3.22.0
METRICS_SERVER_VERSION=v0.9.0
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

go_version="$("$GO" env GOVERSION)"
key="$( (cat go.mod go.sum; echo "metrics-server $METRICS_SERVER_VERSION") | sha256sum | cut -c1-12)"
cache_root="${TESTBED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ims-testbed}"
out="$cache_root/cluster/$K8S_VERSION-$go_version-$key/bin"

if [[ "${1:-}" == --print-dir ]]; then
  echo "$out"
  exit 0
fi

TOOLS=(
  k8s.io/kubernetes/cmd/kube-apiserver
  k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kube-scheduler
  k8s.io/kubernetes/cmd/kubelet
  k8s.io/kubernetes/cmd/kube-proxy
  k8s.io/kubernetes/cmd/kubectl
  github.com/coredns/coredns
  helm.sh/helm/v3/cmd/helm
)

if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
start=$SECONDS
major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
echo "cluster build: $K8S_VERSION and add-ons with $go_version into $out (first time: 15-40 min)" >&2
# one `go build` for all of them: packages they share are compiled once, in parallel
nice -n 10 "$GO" build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$out/" "${TOOLS[@]}"
GOBIN="$out" nice -n 10 "$GO" install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
# the pod sandbox's pause process, from Kubernetes' own source (its Makefile's flags; no image
# registry to pull registry.k8s.io/pause from)
src="$("$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)"
gcc -Os -Wall -Werror -static -DVERSION=v3.10.2-imstb -o "$out/pause" "$src/build/pause/linux/pause.c"
strip "$out/pause"
echo "$((SECONDS - start))" >"$out/.build-seconds"
touch "$out/.complete"
# binaries of earlier keys are never used again
for old in "$cache_root"/cluster/*/; do
  [[ "${old%/}" == "${out%/bin}" ]] || rm -rf "$old"
done
echo "cluster build: done in $((SECONDS - start)) s" >&2
echo "$out"
