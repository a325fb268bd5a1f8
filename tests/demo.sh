#!/usr/bin/env bash
# The demo: a throwaway local control plane, a source Secret, a handful of namespaces, then a
# dry run, a real run, a second run, a Pod that gets the pull secret injected, and a reviewed
# rename that keeps the copy the Pod still uses, then `explain` of a Pod that would pull from a
# real local registry and of one that would not. Cleans up after.
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

step "7. Why would a Pod pull, or not? A real registry (CNCF Distribution, TLS, htpasswd) and explain"
reg_bin=$(bash tests/tools/build.sh registry)
reg="$dir/registry"; mkdir -p "$reg/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host="127.0.0.1:$port"
(cd "$reg"
 openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj "/CN=demo CA" 2>/dev/null
 openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.csr -subj "/CN=127.0.0.1" 2>/dev/null
 echo "subjectAltName=IP:127.0.0.1" > ext.cnf
 openssl x509 -req -in req.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile ext.cnf 2>/dev/null
 htpasswd -Bbn demo-user demo-password-not-real > htpasswd
 printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp:\n  addr: %s\n  tls: {certificate: %s/cert.pem, key: %s/key.pem}\nauth: {htpasswd: {realm: demo, path: %s/htpasswd}}\n' \
   "$reg" "$host" "$reg" "$reg" "$reg" > config.yml)
OTEL_TRACES_EXPORTER=none "$reg_bin" serve "$reg/config.yml" >"$reg/log" 2>&1 & reg_pid=$!
trap 'kill $reg_pid 2>/dev/null; bash tests/controlplane/down.sh "$dir" 2>/dev/null || true' EXIT
curl_reg() { curl -sf --cacert "$reg/ca.pem" -u demo-user:demo-password-not-real "$@"; }
for _ in $(seq 50); do curl -s --cacert "$reg/ca.pem" -o /dev/null "https://$host/v2/" && break; sleep 0.1; done
# Push a one-layer image with the registry HTTP API (blob uploads: POST, then PUT with the
# digest; then the manifest).
push_blob() {
  local loc sep
  loc=$(curl_reg -X POST -D - -o /dev/null "https://$host/v2/demo/app/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  [[ $loc == http* ]] || loc="https://$host$loc"
  sep='?'; [[ $loc == *\?* ]] && sep='&'
  curl_reg -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" \
    "$loc${sep}digest=sha256:$(sha256sum "$1" | cut -d' ' -f1)" >/dev/null
}
echo "demo layer" > "$reg/layer"; echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$reg/config.json"
push_blob "$reg/layer"; push_blob "$reg/config.json"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$(sha256sum "$reg/config.json" | cut -d' ' -f1)" "$(stat -c%s "$reg/config.json")" "$(sha256sum "$reg/layer" | cut -d' ' -f1)" "$(stat -c%s "$reg/layer")" > "$reg/manifest.json"
curl_reg -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$reg/manifest.json" "https://$host/v2/demo/app/manifests/1.0" >/dev/null
echo "registry $host serves demo/app:1.0 (pushed with curl through the registry API)"
k -n pullsecret-reconciler create secret docker-registry app-pull \
  --docker-server="$host" --docker-username=demo-user --docker-password=demo-password-not-real
export PULLSECRET_SOURCE_SECRETS=regcred=regcred-v2,app-pull PULLSECRET_VERIFY=warn PULLSECRET_REGISTRY_CA_FILE=$reg/ca.pem
run
k -n team-b run api --image="$host/demo/app:1.0" --restart=Never
k -n team-b run api-next --image="$host/demo/app:2.0" --restart=Never
explain() { echo "\$ pullsecret-reconciler explain $*"; ./target/debug/pullsecret-reconciler explain "$@" || echo "(exit $?)"; }
explain api -n team-b
explain api-next -n team-b

step "Done; the control plane is being removed"
