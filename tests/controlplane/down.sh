#!/usr/bin/env bash
# Stops the cluster started by `up.sh [--node] --detach` and removes its folder.
# Usage: down.sh [folder]   (default: the last one up.sh --detach started)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${PULLSECRET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler}
pointer="$cache_root/current-cluster"
dir=${1:-$(cat "$pointer" 2>/dev/null || true)}
[[ -n $dir && -d $dir ]] || { echo "controlplane: nothing to stop" >&2; exit 0; }
say() { echo "controlplane: $*" >&2; }
# shellcheck source=stop.sh
source "$here/stop.sh"
if [[ -f $dir/node ]]; then
  # shellcheck source=node.sh
  source "$here/node.sh"
  node_down
fi
for name in scheduler controller-manager apiserver etcd; do stop_one "$name"; done
rm -rf "$dir"
[[ $(cat "$pointer" 2>/dev/null) == "$dir" ]] && rm -f "$pointer"
say "stopped and removed $dir"
