# Sourced by up.sh and down.sh: stop one process of the cluster in $dir by its pid file, politely
# first (5 s), then for sure.
stop_one() { # name
  local f=$dir/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f"); rm -f "$f"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
