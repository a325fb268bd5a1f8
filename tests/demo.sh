#!/usr/bin/env bash
# The demo: a throwaway one-node cluster (etcd, kube-apiserver, scheduler, controllers, containerd
# and a kubelet, all on loopback) and a real private registry (CNCF Distribution, TLS, htpasswd).
# A team's Deployment waits in ImagePullBackOff; a dry run, a run and a second run; after a
# rollout restart the kubelet pulls and the Pod runs. Then a reviewed rename that keeps the copy
# running Pods still use, and `explain` of a Pod that pulls and of one that does not. The first
# time it installs Debian packages and builds the components (tests/setup.sh). Cleans up after.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Set-up (first time only: Debian packages, Kubernetes and registry built from Go modules)"
bash tests/setup.sh
cargo build --quiet --locked
bin=$(bash tests/controlplane/build.sh)
dir=$(mktemp -d "${TMPDIR:-/tmp}/pullsecret-cp.demo.XXXXXX")
reg_pid=
cleanup() {
  [[ -z $reg_pid ]] || kill "$reg_pid" 2>/dev/null || true
  bash tests/controlplane/down.sh "$dir" 2>/dev/null || true
}
trap cleanup EXIT

step "Starting a throwaway one-node cluster"
PULLSECRET_CONTROLPLANE_DIR=$dir bash tests/controlplane/up.sh --node --detach >/dev/null
export KUBECONFIG=$dir/kubeconfig
k() { echo "\$ kubectl $*"; "$bin/kubectl" "$@"; }
kq() { "$bin/kubectl" "$@" >/dev/null; }
"$bin/kubectl" get nodes

step "A private registry (fake credentials) holding the team's image"
reg_bin=$(bash tests/tools/build.sh registry)
reg="$dir/registry"; mkdir -p "$reg/data" "$reg/certs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host="127.0.0.1:$port"
user=demo-user password=demo-password-not-real
(cd "$reg"
 openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj "/CN=demo CA" 2>/dev/null
 openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.csr -subj "/CN=127.0.0.1" 2>/dev/null
 echo "subjectAltName=IP:127.0.0.1" > ext.cnf
 openssl x509 -req -in req.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile ext.cnf 2>/dev/null
 cp ca.pem certs/ca.crt
 htpasswd -Bbn "$user" "$password" > htpasswd
 printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp:\n  addr: %s\n  tls: {certificate: %s/cert.pem, key: %s/key.pem}\nauth: {htpasswd: {realm: demo, path: %s/htpasswd}}\n' \
   "$reg" "$host" "$reg" "$reg" "$reg" > config.yml)
OTEL_TRACES_EXPORTER=none "$reg_bin" serve "$reg/config.yml" >"$reg/log" 2>&1 & reg_pid=$!
for _ in $(seq 50); do curl -s --cacert "$reg/ca.pem" -o /dev/null "https://$host/v2/" && break; sleep 0.1; done
# The node trusts the registry's CA (containerd's certs.d), as a cluster operator sets it up.
mkdir -p "$dir/certs.d/$host"
printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s/ca.pem"\n' "$host" "$host" "$reg" > "$dir/certs.d/$host/hosts.toml"
auth=$(printf '%s:%s' "$user" "$password" | base64 -w0)
printf '{"auths":{"%s":{"auth":"%s"}}}' "$host" "$auth" > "$reg/auth.json"
bash tests/images/build.sh push "$(bash tests/images/build.sh app)" "$host/demo/app:1" "$reg/certs" "$reg/auth.json"
echo "pushed $host/demo/app:1 (busybox, built without a Docker engine)"

pod_of() { "$bin/kubectl" -n "$1" get pods -l app=web -o jsonpath='{.items[-1:].metadata.name}'; }
waiting() { "$bin/kubectl" -n "$1" get pods -l app=web -o jsonpath='{.items[*].status.containerStatuses[0].state.waiting.reason}'; }
kubelet_says() { # namespace pod
  echo "\$ kubectl -n $1 get events --field-selector involvedObject.name=$2  (the kubelet's own lines)"
  "$bin/kubectl" -n "$1" get events --field-selector "involvedObject.name=$2,source=kubelet" \
    --sort-by=.lastTimestamp -o custom-columns='REASON:.reason,MESSAGE:.message' | cut -c1-150
}

step "Team namespaces; team-a deploys the private image before any pull Secret exists"
for ns in team-a team-b team-c team-d; do kq create namespace "$ns"; done
k annotate namespace team-c pullsecret-reconciler/exclude=true
for _ in $(seq 50); do "$bin/kubectl" -n team-d get sa default >/dev/null 2>&1 && break; sleep 0.1; done
k -n team-d patch serviceaccount default -p '{"imagePullSecrets":[{"name":"other-secret"}]}'
# hostNetwork: the demo node has loopback only.
"$bin/kubectl" -n team-a apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: "$host/demo/app:1"}]
EOF
for _ in $(seq 120); do [[ $(waiting team-a) == *Image* ]] && break; sleep 0.5; done
k -n team-a get pods
kubelet_says team-a "$(pod_of team-a)"

step "The source Secret in the tool's namespace"
kq create namespace pullsecret-reconciler
k -n pullsecret-reconciler create secret generic regcred --type=kubernetes.io/dockerconfigjson \
  --from-file=.dockerconfigjson="$reg/auth.json"

export PULLSECRET_SOURCE_SECRETS=regcred PULLSECRET_SOURCE_NAMESPACE=pullsecret-reconciler RUST_LOG=warn
export PULLSECRET_VERIFY=warn PULLSECRET_REGISTRY_CA_FILE=$reg/ca.pem
run() { echo "\$ PULLSECRET_SOURCE_SECRETS=$PULLSECRET_SOURCE_SECRETS pullsecret-reconciler $*"; ./target/debug/pullsecret-reconciler "$@" || echo "(exit $?)"; }

step "1. Dry run: what would change (nothing is written)"
run --dry-run
step "2. Real run (it logs in to the registry first: PULLSECRET_VERIFY=warn)"
run
step "3. Second run: nothing left to do, zero writes"
run

step "The result"
k get secrets -A --field-selector metadata.name=regcred
"$bin/kubectl" get serviceaccounts -A -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,IMAGE-PULL-SECRETS:.imagePullSecrets[*].name'
echo "(team-c is excluded by annotation; team-d keeps other-secret, first)"

# A rollout restart, waited for until the old Pod is gone.
restart() {
  local old; old=$(pod_of team-a)
  k -n team-a rollout restart deployment/web
  "$bin/kubectl" -n team-a rollout status deployment/web --timeout=120s >/dev/null
  "$bin/kubectl" -n team-a wait --for=delete "pod/$old" --timeout=60s >/dev/null 2>&1 || true
}

step "4. The stuck Pod was admitted without the Secret: a rollout restart, and the kubelet pulls"
restart
k -n team-a get pods
kubelet_says team-a "$(pod_of team-a)"

step "5. A rename, reviewed first: regcred -> regcred-v2 (team-a's running Pod names regcred)"
export PULLSECRET_SOURCE_SECRETS=regcred=regcred-v2
run --dry-run
step "6. The rename: every ServiceAccount moves to regcred-v2; the old copies stay for this run"
run
k get secrets -A --field-selector metadata.name=regcred
step "7. After a rollout restart nothing names regcred: the next run deletes the old copies"
restart
run
kubelet_says team-a "$(pod_of team-a)"

step "8. Why would a Pod pull, or not? explain walks the kubelet's chain"
k -n team-b run api --image="$host/demo/app:1" --restart=Never --overrides='{"spec":{"hostNetwork":true}}'
k -n team-b run api-next --image="$host/demo/app:2" --restart=Never --overrides='{"spec":{"hostNetwork":true}}'
explain() { echo "\$ pullsecret-reconciler explain $*"; ./target/debug/pullsecret-reconciler explain "$@" || echo "(exit $?)"; }
explain api -n team-b
explain api-next -n team-b
for _ in $(seq 60); do
  [[ $("$bin/kubectl" -n team-b get pod api-next -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}') == *Image* ]] && break
  sleep 0.5
done
k -n team-b get pods
echo "(the kubelet agrees: api runs, api-next cannot pull a tag that does not exist)"

step "Done; the cluster is being removed"
