#!/usr/bin/env bash
# Builds the container images the node tests, the demo and `just image` use, without a Docker
# engine: Debian's buildah, as root, with its own storage under the user cache (vfs driver, so
# it needs no overlay mounts). Nothing is downloaded: every image starts `from scratch`.
#
#   build.sh pause                 the node's sandbox image (pause.c, compiled static here)
#   build.sh app [VARIANT]         a tiny workload image: Debian's busybox-static (`sleep`, `sh`);
#                                  each VARIANT is another image (its own config digest)
#   build.sh product [BINARY]      the product: the release binary (default target/release/…),
#                                  the shared libraries ldd lists, the CA bundle; uid 65532
#   build.sh push NAME REF CERT_DIR AUTHFILE
#                                  push a built image to docker://REF (TLS trust from CERT_DIR,
#                                  credentials from a docker config AUTHFILE, never argv)
#   build.sh archive NAME FILE     write a docker-archive (for `ctr images import`)
# Each build prints the local image name (localhost/pullsecret-NAME:KEY; KEY = content hash).
# Env: PULLSECRET_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache_root=${PULLSECRET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-reconciler}
store="$cache_root/buildah"
mkdir -p "$store"
say() { echo "images: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
command -v buildah >/dev/null || fail "buildah is not installed (Debian package 'buildah'; tests/setup.sh installs it)"
bah() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }

# One build at a time per machine (test binaries may ask at once).
exec 9>"$store/.lock"
flock 9

exists() { bah inspect --type image "$1" >/dev/null 2>&1; }

# from-scratch image NAME KEY: runs the rest of the recipe in function $3 with the container id.
image() {
  local name=$1 key=$2 recipe=$3 ref="localhost/pullsecret-$1:$2" ctr
  if ! exists "$ref"; then
    ctr=$(bah from --name "pullsecret-$name-$$" scratch)
    "$recipe" "$ctr" || { bah rm "$ctr" >/dev/null; fail "building image $name"; }
    bah commit --quiet --rm "$ctr" "$ref" >/dev/null || fail "committing image $name"
    say "built $ref"
  fi
  echo "$ref"
}

pause_recipe() {
  local tmp; tmp=$(mktemp -d)
  cc -static -O2 -o "$tmp/pause" "$here/pause.c" || return 1
  bah copy "$1" "$tmp/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --user 65535:65535 "$1"
  rm -rf "$tmp"
}

app_recipe() {
  bah copy "$1" /bin/busybox /bin/busybox >/dev/null
  bah config --entrypoint '["/bin/busybox"]' --cmd '["sleep", "3600"]' --user 65532:65532 \
    --label "pullsecret.test/variant=$variant" "$1"
}

product_recipe() {
  local lib tmp; tmp=$(mktemp -d)
  # A test build carries debug info: strip it (a release build is stripped already).
  cp "$binary" "$tmp/pullsecret-reconciler"
  strip "$tmp/pullsecret-reconciler" 2>/dev/null || true
  bah copy "$1" "$tmp/pullsecret-reconciler" /usr/local/bin/pullsecret-reconciler >/dev/null
  rm -rf "$tmp"
  # The release binary links glibc dynamically: the libraries it loads, at the paths it loads them.
  for lib in $(ldd "$binary" | grep -Eo '/[^ ]+'); do
    bah copy "$1" "$(readlink -f "$lib")" "$lib" >/dev/null
  done
  bah copy "$1" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
  bah config --entrypoint '["/usr/local/bin/pullsecret-reconciler"]' --user 65532:65532 \
    --label org.opencontainers.image.title=pullsecret-reconciler "$1"
}

what=${1:?usage: build.sh pause|app|product [BINARY]|push NAME REF CERT_DIR AUTHFILE|archive NAME FILE}
case $what in
  pause) image pause "$(sha256sum "$here/pause.c" | cut -c1-12)" pause_recipe ;;
  app)
    [[ -x /bin/busybox ]] || fail "/bin/busybox is missing (Debian package 'busybox-static')"
    variant=${2:-1}
    image app "$(printf '%s' "$variant" | cat /bin/busybox - | sha256sum | cut -c1-12)" app_recipe ;;
  product)
    binary=${2:-$root/target/release/pullsecret-reconciler}
    [[ -x $binary ]] || fail "$binary is missing: cargo build --release --locked"
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] || fail "no CA bundle at /etc/ssl/certs/ca-certificates.crt (Debian package 'ca-certificates')"
    image product "$(cat "$binary" /etc/ssl/certs/ca-certificates.crt | sha256sum | cut -c1-12)" product_recipe ;;
  push)
    name=${2:?NAME} ref=${3:?REF} certs=${4:?CERT_DIR} auth=${5:?AUTHFILE}
    bah push --quiet --cert-dir "$certs" --authfile "$auth" "$name" "docker://$ref" >/dev/null \
      || fail "pushing $name to $ref"
    ;;
  archive)
    name=${2:?NAME} file=${3:?FILE}
    rm -f "$file"
    bah push --quiet "$name" "docker-archive:$file:$name" >/dev/null || fail "writing $name to $file"
    ;;
  *) fail "unknown command $what" ;;
esac
