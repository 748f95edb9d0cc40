#!/usr/bin/env bash
# Builds the pinned upstream binaries that tests, the demo and benchmarks run against,
# from their Go modules, into a cache under $HOME keyed by version. The product itself is TypeScript.
# Usage: scripts/go-binaries.sh kubernetes|kubernetes-node|etcd|konnectivity|helm|promtool|wireguard-go|coredns|all
#        (prints the bin dir)
#        scripts/go-binaries.sh kube-apiserver|kube-controller-manager|kubectl   one control-plane binary alone (what an
#        envtest KUBEBUILDER_ASSETS directory lacks), into its own cache directory
#        scripts/go-binaries.sh dir <target>   prints where <target> is cached, building nothing
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.4}"
KONNECTIVITY_VERSION="${KONNECTIVITY_VERSION:-v0.34.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
# Prometheus 3.16 (its Go module versions are v0.3XX.Y) for promtool; prometheus-operator for its monitoring CRDs.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
# wireguard-go with the TUN GSO/GRO offloads (upstream tags it 0.0.20250522; the module has pseudo-versions only).
WIREGUARD_GO_VERSION="${WIREGUARD_GO_VERSION:-v0.0.0-20260522210424-ecfc5a8d5446}"
# The CoreDNS release Kubernetes v1.34 ships, which k8s/base's raven-proxy-dns deploys.
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
CACHE_ROOT="${RAVEN_BIN_CACHE:-$HOME/.cache/raven-ts/bin}"

export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0

log() { echo "[go-binaries] $*" >&2; }

# Runs "$@" in a fresh module directory, then moves built binaries into the cache atomically.
build_into() {
  local out="$1"; shift
  if [ -f "$out/.complete" ]; then echo "$out"; return; fi
  local work; work="$(mktemp -d "${TMPDIR:-/tmp}/raven-gobuild.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/bin"
  ( cd "$work" && "$@" )
  mkdir -p "$(dirname "$out")"
  rm -rf "$out.tmp" && mv "$work/bin" "$out.tmp" && touch "$out.tmp/.complete"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "$out"
}

# Writes go.mod + tools.go pinning k8s.io/kubernetes (staging modules replaced by their published twins) for the
# commands given as arguments, then downloads the module set.
kubernetes_modules_for() {
  local minor="v0.${KUBE_VERSION#v1.}"
  cat > go.mod <<MOD
module raven.local/kubebins

go 1.24.0

require k8s.io/kubernetes $KUBE_VERSION
MOD
  local gomod; gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # Every staging module the kubernetes go.mod points at ./staging is replaced by its published v0.X twin.
  grep -E '^\s*k8s.io/[^ ]+ => ./staging' "$gomod" | awk '{print $1}' | while read -r m; do
    echo "replace $m => $m $minor" >> go.mod
  done
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'; } > tools.go
  log "resolving k8s.io/kubernetes $KUBE_VERSION modules"
  go mod tidy -e >/dev/null 2>&1 || true
  go mod download
}

build_kubernetes_cmds() {
  local pkgs=(); for cmd in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
    -o bin/ "${pkgs[@]}"
}

kubernetes_module() {
  kubernetes_modules_for kube-apiserver kube-controller-manager kubectl
  log "building kube-apiserver, kube-controller-manager, kubectl (several minutes on first run)"
  build_kubernetes_cmds kube-apiserver kube-controller-manager kubectl
}

# One control-plane command alone, for a KUBEBUILDER_ASSETS directory that has the others.
kubernetes_single_module() {
  kubernetes_modules_for "$1"
  log "building $1 only (the rest comes from KUBEBUILDER_ASSETS)"
  build_kubernetes_cmds "$1"
}

# The node side (and the scheduler) from the same pinned module set, cached apart so the control plane stays built.
kubernetes_node_module() {
  kubernetes_modules_for kubelet kube-proxy kube-scheduler
  log "building kubelet, kube-proxy, kube-scheduler (a few minutes on first run)"
  build_kubernetes_cmds kubelet kube-proxy kube-scheduler
}

etcd_module() {
  cat > go.mod <<MOD
module raven.local/etcdbin

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy >/dev/null 2>&1
  log "building etcd $ETCD_VERSION"
  go build -ldflags "-s -w" -o bin/etcd .
}

konnectivity_module() {
  cat > go.mod <<MOD
module raven.local/konnectivitybins

go 1.24.0

require sigs.k8s.io/apiserver-network-proxy $KONNECTIVITY_VERSION
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "sigs.k8s.io/apiserver-network-proxy/cmd/agent"
	_ "sigs.k8s.io/apiserver-network-proxy/cmd/server"
)
GO
  go mod tidy -e >/dev/null 2>&1 || true
  log "building konnectivity $KONNECTIVITY_VERSION"
  go build -ldflags "-s -w" -o bin/proxy-server sigs.k8s.io/apiserver-network-proxy/cmd/server
  go build -ldflags "-s -w" -o bin/proxy-agent sigs.k8s.io/apiserver-network-proxy/cmd/agent
}

helm_module() {
  cat > go.mod <<MOD
module raven.local/helmbin

go 1.24.0

require helm.sh/helm/v3 $HELM_VERSION
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v3/cmd/helm"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  log "building helm $HELM_VERSION"
  go build -ldflags "-s -w" -o bin/helm helm.sh/helm/v3/cmd/helm
}

promtool_module() {
  cat > go.mod <<MOD
module raven.local/promtoolbin

go 1.24.0

require github.com/prometheus/prometheus $PROMETHEUS_VERSION
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  log "building promtool (prometheus module $PROMETHEUS_VERSION)"
  # remove_all_sd leaves out the cloud service-discovery plugins (and their SDKs): rule checks and tests need none.
  go build -tags remove_all_sd -ldflags "-s -w" -o bin/promtool github.com/prometheus/prometheus/cmd/promtool
  # The monitoring.coreos.com CRDs (PodMonitor, ServiceMonitor, PrometheusRule), so tests can apply the monitoring
  # component to a real apiserver. They ship inside the operator's module.
  local dir; dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  mkdir -p bin/crds
  for kind in podmonitors servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" bin/crds/
  done
}

wireguard_go_module() {
  log "building wireguard-go $WIREGUARD_GO_VERSION"
  # `go install pkg@version` builds the module exactly as its own go.mod pins it; the root package is the daemon.
  GOBIN="$PWD/bin" go install -ldflags "-s -w" "golang.zx2c4.com/wireguard@$WIREGUARD_GO_VERSION"
  mv bin/wireguard bin/wireguard-go
}

coredns_module() {
  log "building coredns $COREDNS_VERSION"
  # `go install pkg@version` builds CoreDNS exactly as its own go.mod pins it, with its default plugin set.
  GOBIN="$PWD/bin" go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

target_dir() {
  case "$1" in
    kubernetes) echo "$CACHE_ROOT/kubernetes-$KUBE_VERSION" ;;
    kube-apiserver|kube-controller-manager|kubectl) echo "$CACHE_ROOT/$1-$KUBE_VERSION" ;;
    kubernetes-node) echo "$CACHE_ROOT/kubernetes-node-$KUBE_VERSION" ;;
    etcd) echo "$CACHE_ROOT/etcd-$ETCD_VERSION" ;;
    konnectivity) echo "$CACHE_ROOT/konnectivity-$KONNECTIVITY_VERSION" ;;
    helm) echo "$CACHE_ROOT/helm-$HELM_VERSION" ;;
    promtool) echo "$CACHE_ROOT/promtool-$PROMETHEUS_VERSION" ;;
    wireguard-go) echo "$CACHE_ROOT/wireguard-go-$WIREGUARD_GO_VERSION" ;;
    coredns) echo "$CACHE_ROOT/coredns-$COREDNS_VERSION" ;;
    *) echo "unknown target $1" >&2; exit 2 ;;
  esac
}

case "${1:-all}" in
  dir) target_dir "${2:?usage: $0 dir <target>}" ;;
  kube-apiserver|kube-controller-manager|kubectl) build_into "$(target_dir "$1")" kubernetes_single_module "$1" ;;
  kubernetes) build_into "$CACHE_ROOT/kubernetes-$KUBE_VERSION" kubernetes_module ;;
  kubernetes-node) build_into "$CACHE_ROOT/kubernetes-node-$KUBE_VERSION" kubernetes_node_module ;;
  etcd) build_into "$CACHE_ROOT/etcd-$ETCD_VERSION" etcd_module ;;
  konnectivity) build_into "$CACHE_ROOT/konnectivity-$KONNECTIVITY_VERSION" konnectivity_module ;;
  helm) build_into "$CACHE_ROOT/helm-$HELM_VERSION" helm_module ;;
  promtool) build_into "$CACHE_ROOT/promtool-$PROMETHEUS_VERSION" promtool_module ;;
  wireguard-go) build_into "$CACHE_ROOT/wireguard-go-$WIREGUARD_GO_VERSION" wireguard_go_module ;;
  coredns) build_into "$CACHE_ROOT/coredns-$COREDNS_VERSION" coredns_module ;;
  all) for t in etcd kubernetes kubernetes-node konnectivity helm promtool wireguard-go coredns; do "$0" "$t"; done ;;
  *) echo "usage: $0 kubernetes|kubernetes-node|etcd|konnectivity|helm|promtool|wireguard-go|coredns|all|kube-apiserver|kube-controller-manager|kubectl|dir <target>" >&2; exit 2 ;;
esac
