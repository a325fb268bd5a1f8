#!/usr/bin/env bash
# Stops the control plane started by `up.sh --detach` and removes its folder.
# Usage: down.sh [folder]   (default: the last one up.sh --detach started)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/versions.env"
cache_root=${PULLSECRET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler}
pointer="$cache_root/current-cluster"
dir=${1:-$(cat "$pointer" 2>/dev/null || true)}
[[ -n $dir && -d $dir ]] || { echo "controlplane: nothing to stop" >&2; exit 0; }
for name in controller-manager apiserver etcd; do
  f=$dir/$name.pid
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
rm -rf "$dir"
[[ $(cat "$pointer" 2>/dev/null) == "$dir" ]] && rm -f "$pointer"
echo "controlplane: stopped and removed $dir" >&2
