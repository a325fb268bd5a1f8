#!/usr/bin/env bash
# Builds (once per machine) a real component the tests use beside the control plane, from its Go
# module, pinned by tests/tools/<name>/go.mod and go.sum (a `tool` directive names the package).
# The binary is cached outside the repository under a key of the pinned version, so later runs
# only print its path. Never a downloaded prebuilt binary.
#
# Usage: build.sh NAME      prints the path of the built binary (NAME: a folder next to this script)
# Env:   PULLSECRET_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${1:?usage: build.sh NAME}
mod="$here/$name"
[[ -f $mod/go.mod ]] || { echo "tools build: no module at $mod" >&2; exit 1; }

say() { echo "tools build ($name): $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# The package to build is the module's single `tool` line; the version is the one go.mod requires.
pkg=$(awk '$1 == "tool" { print $2 }' "$mod/go.mod")
[[ -n $pkg ]] || fail "no 'tool' line in $mod/go.mod"
# The binary's name: the package's last element (…/cmd/helm → helm).
bin=${pkg##*/}
# The cache key: the pinned go.sum, so a version bump rebuilds.
key=$(sha256sum "$mod/go.sum" | cut -c1-12)
cache_root=${PULLSECRET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler}
out_dir="$cache_root/tools/$name-$key"
mkdir -p "$cache_root/tools"

exec 9>"$cache_root/tools/.$name.lock"
flock 9

if [[ ! -x $out_dir/$bin ]]; then
  command -v go >/dev/null || fail "go is not installed; it is needed once to build $pkg"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
  ldflags="-s -w"
  if [[ -f $mod/ldflags ]]; then ldflags+=" $(grep -v '^#' "$mod/ldflags" | tr '\n' ' ')"; fi
  say "building $pkg into $out_dir (first time only)"
  start=$SECONDS
  tmp="$out_dir.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$bin" "$pkg") || fail "step 'go build $pkg'"
  rm -rf "$out_dir"; mv "$tmp" "$out_dir"
  say "built in $((SECONDS - start))s"
fi
echo "$out_dir/$bin"
