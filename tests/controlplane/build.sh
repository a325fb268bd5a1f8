#!/usr/bin/env bash
# Builds (once per machine) the real control-plane binaries used by the tests, the demo and the
# benchmark: kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes, and etcd.
# They are cached outside the repository, keyed by version, so later runs only print the folder.
#
# Usage: build.sh            prints the folder holding kube-apiserver, kube-controller-manager, kubectl, etcd
# Env:   PULLSECRET_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler)
#        KUBEBUILDER_ASSETS    a folder with envtest binaries; any of the four found there is used as is
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

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

k8s_bins=(kube-apiserver kube-controller-manager kubectl)
have_assets() { [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$1" ]]; }

need_k8s=false
for b in "${k8s_bins[@]}"; do
  have_assets "$b" || [[ -x "$k8s_dir/$b" ]] || need_k8s=true
done
if $need_k8s; then
  command -v go >/dev/null || fail "go is not installed; it is needed once to build $KUBERNETES_VERSION"
  minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  say "building kube-apiserver, kube-controller-manager, kubectl $KUBERNETES_VERSION into $k8s_dir (first time only; 10-25 min on 2 cores)"
  start=$SECONDS
  tmp="$k8s_dir.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$here/kubernetes" && go mod download) || fail "step 'download Go modules for k8s.io/kubernetes $KUBERNETES_VERSION'"
  (cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl) \
    || fail "step 'go build k8s.io/kubernetes/cmd/{kube-apiserver,kube-controller-manager,kubectl}'"
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
