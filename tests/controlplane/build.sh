#!/usr/bin/env bash
# Builds (once per machine) the real Kubernetes binaries used by the tests, the demo and the
# benchmark: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and the kubelet from
# k8s.io/kubernetes (the wrapper module kubernetes/v1.MINOR pins every staging module), and etcd.
# They are cached outside the repository, keyed by version, so later runs only print the folder.
#
# Usage: build.sh            prints the folder holding those binaries and etcd
# Env:   PULLSECRET_KUBERNETES_VERSION  which Kubernetes (default: KUBERNETES_VERSION of versions.env;
#                                       KUBERNETES_OLDEST_VERSION is the oldest the tool supports)
#        PULLSECRET_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler)
#        KUBEBUILDER_ASSETS    a folder with envtest binaries; kube-apiserver, kubectl or etcd found
#                              there is used as is
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
KUBERNETES_VERSION=${PULLSECRET_KUBERNETES_VERSION:-$KUBERNETES_VERSION}
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
module="$here/kubernetes/v1.$minor"

cache_root=${PULLSECRET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler}
k8s_dir="$cache_root/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache_root/etcd-$ETCD_VERSION"
out_dir="$cache_root/controlplane-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"
mkdir -p "$cache_root"

say() { echo "controlplane build: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# Several test binaries may start at once on a cold machine: build only once.
exec 9>"$cache_root/.build.lock"
flock 9

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
have_assets() { [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$1" ]]; }

need_k8s=false
for b in "${k8s_bins[@]}"; do
  have_assets "$b" || [[ -x "$k8s_dir/$b" ]] || need_k8s=true
done
if $need_k8s; then
  command -v go >/dev/null || fail "go is not installed; it is needed once to build $KUBERNETES_VERSION"
  grep -q "k8s.io/kubernetes $KUBERNETES_VERSION" "$module/go.mod" 2>/dev/null \
    || fail "$module/go.mod does not pin k8s.io/kubernetes $KUBERNETES_VERSION"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  say "building ${k8s_bins[*]} $KUBERNETES_VERSION into $k8s_dir (first time only; 15-30 min on 2 cores)"
  start=$SECONDS
  tmp="$k8s_dir.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$module" && go mod download) || fail "step 'download Go modules for k8s.io/kubernetes $KUBERNETES_VERSION'"
  (cd "$module" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${k8s_bins[@]/#/k8s.io/kubernetes/cmd/}") \
    || fail "step 'go build k8s.io/kubernetes/cmd/{${k8s_bins[*]}}' in $module"
  rm -rf "$k8s_dir"; mv "$tmp" "$k8s_dir"
  say "kubernetes binaries built in $((SECONDS - start))s"
fi

if ! have_assets etcd && [[ ! -x "$etcd_dir/etcd" ]]; then
  command -v go >/dev/null || fail "go is not installed; it is needed once to build etcd $ETCD_VERSION"
  say "building etcd $ETCD_VERSION into $etcd_dir (first time only)"
  start=$SECONDS
  tmp="$etcd_dir.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .) \
    || fail "step 'go build go.etcd.io/etcd/server/v3 (etcd $ETCD_VERSION)'"
  rm -rf "$etcd_dir"; mv "$tmp" "$etcd_dir"
  say "etcd built in $((SECONDS - start))s"
fi

# One folder with all four, as links, so callers need one path.
mkdir -p "$out_dir"
for b in "${k8s_bins[@]}" etcd; do
  if have_assets "$b"; then src="$KUBEBUILDER_ASSETS/$b"
  elif [[ $b == etcd ]]; then src="$etcd_dir/etcd"
  else src="$k8s_dir/$b"; fi
  ln -sfn "$src" "$out_dir/$b"
done
echo "$out_dir"
