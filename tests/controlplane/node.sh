# A real node beside the local control plane, sourced by up.sh --node (and by down.sh to stop
# one): kube-scheduler, containerd (Debian's, with runc) and a kubelet built from the same
# k8s.io/kubernetes module. Everything lives under $dir: containerd's root, state, socket and
# runc's state, the kubelet's root dir and Pod logs, the certs.d folder that tells containerd
# which registry CAs to trust. Nothing is configured or contacted beyond 127.0.0.0/8: Pods use
# hostNetwork (containerd 1.6 cannot start another sandbox without a CNI result).
#
# Uses from up.sh: $dir $bin $pki $here, say, free_port, wait_ready, kubectl_, stop_one.
# Layout (for tests): $dir/certs.d/HOST:PORT/hosts.toml  registry trust (written by the tests)
#                     $dir/pod-logs/NS_POD_UID/CONTAINER/N.log  container logs (kubectl logs
#                     needs a node address, and a loopback node IP is refused)

node_name=pullsecret-node
cni_bin=/usr/lib/cni
sandbox_image=localhost/pullsecret-pause:node

ctr_() { ctr --address "$dir/containerd/containerd.sock" --namespace k8s.io "$@"; }

node_config() {
  local kubelet_port=$1 healthz_port=$2
  mkdir -p "$dir/containerd" "$dir/certs.d" "$dir/kubelet" "$dir/pod-logs" "$dir/runc" "$dir/cni/conf"
  # The kubelet reports the node Ready only once the runtime's network is: a loopback-only CNI
  # network (Debian's containernetworking-plugins) satisfies it and adds no address. Test Pods
  # use hostNetwork all the same.
  cat > "$dir/cni/conf/10-loopback.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "pullsecret-loopback", "plugins": [{"type": "loopback"}]}
EOF
  cat > "$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
# The CRI plugin alone: no other plugin of this containerd keeps state outside $dir.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[ttrpc]
  address = "$dir/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  # This sandbox refuses lowering oom_score_adj; without this runc fails ("can't get final
  # child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$dir/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
  cat > "$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
imageServiceEndpoint: unix://$dir/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
# This machine kind has cgroup v1; from 1.35 the kubelet refuses it unless told.
failCgroupV1: false
podLogsDir: $dir/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# No client-side pull rate limit: tests start many pulls at once, and "pull QPS exceeded" is
# not the outcome they look at.
registryPullQPS: 0
resolvConf: ""
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 4s
staticPodPath: ""
EOF
}

start_containerd() {
  containerd --config "$dir/containerd/config.toml" >"$dir/containerd.log" 2>&1 &
  echo $! > "$dir/containerd.pid"
}
start_scheduler() {
  "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false --v=1 \
    >"$dir/scheduler.log" 2>&1 &
  echo $! > "$dir/scheduler.pid"
}
start_kubelet() {
  "$bin/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$dir/kubeconfig" \
    --root-dir "$dir/kubelet/root" --cert-dir "$dir/kubelet/pki" \
    --hostname-override "$node_name" --node-ip 127.0.0.1 --v=2 \
    >"$dir/kubelet.log" 2>&1 &
  echo $! > "$dir/kubelet.pid"
}

node_ready() {
  [[ $(kubectl_ get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]] &&
    # The node lifecycle controller removes the not-ready taint; until then nothing schedules.
    [[ -z $(kubectl_ get node "$node_name" -o 'jsonpath={.spec.taints}') ]]
}

node_up() {
  local start=$SECONDS pause
  for tool in containerd containerd-shim-runc-v2 runc ctr; do
    command -v "$tool" >/dev/null || { say "FAILED: $tool is missing (Debian packages containerd and runc; tests/setup.sh installs them)"; return 1; }
  done
  [[ -x $cni_bin/loopback ]] || { say "FAILED: $cni_bin/loopback is missing (Debian package containernetworking-plugins)"; return 1; }
  touch "$dir/node"
  node_config "$(free_port)" "$(free_port)"
  start_scheduler
  start_containerd
  wait_ready containerd 30 ctr_ version || return 1
  # The sandbox image cannot be pulled here: build it from pause.c and import it.
  pause=$(bash "$here/../images/build.sh" pause) || { say "FAILED: building the pause image"; return 1; }
  bash "$here/../images/build.sh" archive "$pause" "$dir/pause.tar" || return 1
  ctr_ images import --snapshotter native "$dir/pause.tar" >/dev/null || { say "FAILED: importing the pause image"; return 1; }
  ctr_ images tag --force "$pause" "$sandbox_image" >/dev/null || return 1
  rm -f "$dir/pause.tar"
  start_kubelet
  wait_ready "kubelet (node $node_name Ready and untainted)" 120 node_ready || return 1
  say "node $node_name ready in $((SECONDS - start))s"
}

node_down() {
  # The kubelet first (it would restart what we stop), then every container and sandbox, then
  # containerd and whatever shim outlived it, then the kubelet's volume mounts.
  stop_one kubelet
  if [[ -S $dir/containerd/containerd.sock ]]; then
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for _ in $(seq 50); do
      ctr_ tasks ls 2>/dev/null | grep -qw RUNNING || break
      sleep 0.1
    done
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  stop_one containerd
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $dir/" 2>/dev/null || true
  local m
  for m in $(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  # Folders the kubelet and containerd-shim create at fixed paths; removed once empty (a second
  # run would not trip over them, but nothing of a test stays behind).
  if [[ -S /var/lib/kubelet/device-plugins/kubelet.sock ]] && ! pgrep -x kubelet >/dev/null; then
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  fi
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /run/containerd/s /run/containerd 2>/dev/null || true
  rm -f "$dir/node"
}
