#!/usr/bin/env bash
# Starts a throwaway real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, TLS,
# ServiceAccount token signing) and kube-controller-manager (serviceaccount, serviceaccount-token
# and namespace controllers only). Free ports, one temp folder, an admin kubeconfig.
# With --node it is a whole one-node cluster: kube-scheduler, kube-controller-manager with every
# controller a real cluster runs, containerd + runc (Debian's packages) and a kubelet, all with
# their state inside the same folder (node.sh); Pods use hostNetwork (loopback only).
#
# Usage:
#   up.sh [--node]            supervise: prints KUBECONFIG=<path> then READY, then reads commands
#                             on stdin (`stop-apiserver`, `start-apiserver`, `stop`); at end of
#                             input (the caller exited or crashed) it stops everything and removes
#                             the folder.
#   up.sh [--node] --detach   start, print KUBECONFIG=<path>, and leave it running; stop with down.sh.
# Env: PULLSECRET_CONTROLPLANE_DIR    folder to use (default: a new temp folder)
#      PULLSECRET_KUBERNETES_VERSION  which Kubernetes (default: versions.env; see build.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
detach=false node=false
for arg in "$@"; do
  case $arg in
    --detach) detach=true ;;
    --node) node=true ;;
    *) echo "controlplane: unknown argument $arg (use --node, --detach)" >&2; exit 2 ;;
  esac
done

say() { echo "controlplane: $*" >&2; }
bin=$("$here/build.sh")
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [[ -x $bin/$b ]] || { say "FAILED: $bin/$b is missing or not executable"; exit 1; }
done

dir=${PULLSECRET_CONTROLPLANE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pullsecret-cp.XXXXXX")}
mkdir -p "$dir/pki"
pki=$dir/pki

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port); kcm_port=$(free_port)
echo "$api_port" > "$dir/api-port"

# --- certificates: a CA, a leaf serving cert for 127.0.0.1 (rustls rejects a CA as server cert),
# an admin client cert (system:masters), and the ServiceAccount signing key pair.
ossl() { openssl "$@" >/dev/null 2>&1 || { say "FAILED: openssl $1"; exit 1; }; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pullsecret-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name subject extensions
  ossl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr"
  printf '%s\n' "$3" > "$pki/$1.ext"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -extfile "$pki/$1.ext" -out "$pki/$1.crt"
}
leaf serving "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
leaf admin "/O=system:masters/CN=admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

b64() { base64 -w0 < "$1"; }
server=https://127.0.0.1:$api_port
cat > "$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
EOF

start_etcd() {
  "$bin/etcd" --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level error \
    >"$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"
}
start_apiserver() {
  "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$dir/apiserver" --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.96.0.0/24 \
    --endpoint-reconciler-type none --profiling=false --v=1 \
    >"$dir/apiserver.log" 2>&1 &
  echo $! > "$dir/apiserver.pid"
}
# API-only clusters run just the controllers those tests need; a node cluster runs them all
# (deployment, replicaset, job, cronjob, garbage collector, ttl-after-finished, root-ca
# publisher, node lifecycle, namespace, serviceaccount and its token, ...).
controllers=serviceaccount,serviceaccount-token,namespace
$node && controllers='*'
start_kcm() {
  "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --controllers "$controllers" --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false --v=1 \
    --kube-api-qps 500 --kube-api-burst 1000 --concurrent-serviceaccount-token-syncs 5 \
    >"$dir/controller-manager.log" 2>&1 &
  echo $! > "$dir/controller-manager.pid"
}

# shellcheck source=stop.sh
source "$here/stop.sh"
teardown() {
  ! $node || node_down
  stop_one scheduler; stop_one controller-manager; stop_one apiserver; stop_one etcd
  [[ -n ${PULLSECRET_KEEP_CONTROLPLANE:-} ]] || rm -rf "$dir"
}

kubectl_() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
wait_ready() { # what timeout-seconds command...
  local what=$1 limit=$2; shift 2
  for _ in $(seq $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  say "FAILED: $what not ready after ${limit}s; last log lines:"
  tail -n 20 "$dir"/*.log >&2 || true
  return 1
}
apiserver_ready() { curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz"; }

# A start that fails tears down what it started, detached or not.
trap teardown EXIT
trap 'exit 1' INT TERM

start=$SECONDS
start_etcd
wait_ready etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"
start_apiserver
wait_ready kube-apiserver 90 apiserver_ready
start_kcm
wait_ready "kube-controller-manager (default ServiceAccount)" 60 kubectl_ get serviceaccount default -n default
if $node; then
  # shellcheck source=node.sh
  source "$here/node.sh"
  node_up || exit 1
fi
say "ready in $((SECONDS - start))s at $server (folder $dir)"

echo "KUBECONFIG=$dir/kubeconfig"
echo "BIN=$bin"
$node && echo "NODE=$dir"
if $detach; then
  echo "$dir" > "$(dirname "$bin")/current-cluster"
  trap - EXIT
  exit 0
fi
echo READY
while read -r cmd; do
  case $cmd in
    stop-apiserver) stop_one apiserver; echo "OK stop-apiserver" ;;
    start-apiserver)
      start_apiserver
      if wait_ready kube-apiserver 90 apiserver_ready; then echo "OK start-apiserver"; else echo "FAILED start-apiserver"; fi ;;
    stop) break ;;
    *) echo "FAILED unknown command: $cmd" ;;
  esac
done
