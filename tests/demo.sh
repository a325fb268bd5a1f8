#!/usr/bin/env bash
# The demo: a throwaway local control plane, a source Secret, a handful of namespaces, then a
# dry run, a real run, a second run, a Pod that gets the pull secret injected, and a reviewed
# rename that keeps the copy the Pod still uses. Cleans up after.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Building the reconciler and (first time only) the control-plane binaries"
cargo build --quiet --locked
bin=$(bash tests/controlplane/build.sh)
dir=$(mktemp -d "${TMPDIR:-/tmp}/pullsecret-cp.demo.XXXXXX")
trap 'bash tests/controlplane/down.sh "$dir" 2>/dev/null || true' EXIT

step "Starting a throwaway control plane (etcd, kube-apiserver, kube-controller-manager)"
PULLSECRET_CONTROLPLANE_DIR=$dir bash tests/controlplane/up.sh --detach >/dev/null
export KUBECONFIG=$dir/kubeconfig
k() { echo "\$ kubectl $*"; "$bin/kubectl" "$@"; }
kq() { "$bin/kubectl" "$@" >/dev/null; }

step "A source Secret (fake credentials) in the tool's namespace, and some team namespaces"
kq create namespace pullsecret-reconciler
k -n pullsecret-reconciler create secret docker-registry regcred \
  --docker-server=registry.example.invalid --docker-username=demo-user --docker-password=demo-password-not-real
for ns in team-a team-b team-c team-d; do kq create namespace "$ns"; done
k annotate namespace team-c pullsecret-reconciler/exclude=true
for _ in $(seq 50); do "$bin/kubectl" -n team-d get sa default >/dev/null 2>&1 && break; sleep 0.1; done
k -n team-d patch serviceaccount default -p '{"imagePullSecrets":[{"name":"other-secret"}]}'

export PULLSECRET_SOURCE_SECRETS=regcred PULLSECRET_SOURCE_NAMESPACE=pullsecret-reconciler RUST_LOG=warn
run() { echo "\$ PULLSECRET_SOURCE_SECRETS=$PULLSECRET_SOURCE_SECRETS pullsecret-reconciler $*"; ./target/debug/pullsecret-reconciler "$@" || echo "(exit $?)"; }

step "1. Dry run: what would change (nothing is written)"
run --dry-run
step "2. Real run"
run
step "3. Second run: nothing left to do, zero writes"
run

step "The result"
k get secrets -A --field-selector metadata.name=regcred
"$bin/kubectl" get serviceaccounts -A -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,IMAGE-PULL-SECRETS:.imagePullSecrets[*].name'
echo "(team-c is excluded by annotation; team-d keeps other-secret, first)"

step "A Pod created now gets the pull secret from its ServiceAccount"
k -n team-a run web --image=registry.example.invalid/private/web:1 --restart=Never
echo "\$ kubectl -n team-a get pod web -o jsonpath='{.spec.imagePullSecrets}'"
"$bin/kubectl" -n team-a get pod web -o jsonpath='{.spec.imagePullSecrets}'; echo

step "4. A rename, reviewed first: regcred -> regcred-v2 (Pod web still names regcred)"
export PULLSECRET_SOURCE_SECRETS=regcred=regcred-v2
run --dry-run
step "5. The rename: every ServiceAccount moves to regcred-v2; the copy Pod web still uses is kept"
run
k get secrets -A --field-selector metadata.name=regcred

step "6. Once the Pod is gone, the next run deletes the last old copy"
kq -n team-a delete pod web --grace-period=0
run

step "Done; the control plane is being removed"
