#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up (tests/setup.sh: Debian packages and the
# Go-built components, cached), then every test on the default Kubernetes, then the node and
# shipping tests again on the oldest supported one. Extra arguments go to the first cargo test.
#
# Usage: bash tests/run.sh [CARGO TEST ARGS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash tests/setup.sh --oldest
source tests/controlplane/versions.env

echo "== every test on Kubernetes $KUBERNETES_VERSION"
cargo test --locked --no-fail-fast "$@"
echo "== node and shipping tests on the oldest supported Kubernetes, $KUBERNETES_OLDEST_VERSION"
PULLSECRET_KUBERNETES_VERSION=$KUBERNETES_OLDEST_VERSION cargo test --locked --no-fail-fast --test node
PULLSECRET_KUBERNETES_VERSION=$KUBERNETES_OLDEST_VERSION cargo test --locked --test integration -- shipping chart controlplane
