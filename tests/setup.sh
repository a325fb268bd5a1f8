#!/usr/bin/env bash
# Everything the tests and the demo need on a fresh machine that has Rust and Go: Debian's
# packages (installed once, as root, if missing), then the Go-built components, each built from
# its pinned module and cached under ~/.cache/pullsecret-reconciler — in parallel, and only
# once per machine: a later call only checks.
#
# Usage: tests/setup.sh [--oldest]   --oldest also builds the oldest supported Kubernetes
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { echo "setup: $*" >&2; }

# command:package. containerd, runc, buildah, the CNI loopback plugin, busybox-static and a C
# compiler run the node and build its images; openssl, curl, flock and pgrep serve the cluster
# scripts; the metrics tests push to a real Pushgateway; the demo makes an htpasswd file.
need=(
  openssl:openssl curl:curl flock:util-linux pgrep:procps python3:python3
  containerd:containerd runc:runc buildah:buildah /usr/lib/cni/loopback:containernetworking-plugins
  /bin/busybox:busybox-static cc:gcc /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev strip:binutils
  /etc/ssl/certs/ca-certificates.crt:ca-certificates
  prometheus-pushgateway:prometheus-pushgateway htpasswd:apache2-utils
)
missing=()
for entry in "${need[@]}"; do
  what=${entry%%:*} pkg=${entry#*:}
  if [[ $what == /* ]]; then [[ -e $what ]] || missing+=("$pkg")
  else command -v "$what" >/dev/null || missing+=("$pkg"); fi
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || { say "FAILED: need root to install ${missing[*]} (apt-get)"; exit 1; }
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

source tests/controlplane/versions.env
versions=("$KUBERNETES_VERSION")
[[ ${1:-} == --oldest ]] && versions+=("$KUBERNETES_OLDEST_VERSION")
start=$SECONDS
pids=()
log=$(mktemp -d)
for tool in helm helm4 registry ecr-credential-provider; do
  bash tests/tools/build.sh "$tool" >/dev/null 2>"$log/$tool" & pids+=($!)
done
# The two Kubernetes builds share most of Go's build cache: one after the other.
(for v in "${versions[@]}"; do PULLSECRET_KUBERNETES_VERSION=$v bash tests/controlplane/build.sh >/dev/null || exit 1; done) \
  2>"$log/kubernetes" & pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
cat "$log"/* >&2
rm -rf "$log"
((failed == 0)) || { say "FAILED: a component did not build (see above)"; exit 1; }
say "ready: Kubernetes ${versions[*]}, helm 3 and 4, registry, ecr-credential-provider ($((SECONDS - start))s)"
