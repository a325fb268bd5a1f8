# Developer recipes (https://github.com/casey/just: `cargo install just`). Each recipe is a thin
# wrapper over a command that also works without just.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build the release binary.
build:
    cargo build --release --locked

# Every test: unit, property, and integration tests on a real local control plane.
test:
    cargo test --locked

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --check
    cargo clippy --locked --all-targets -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run

# A short story on a throwaway local control plane: dry run, run, second run, a Pod.
demo:
    bash tests/demo.sh

# Build (once) the control-plane binaries into the user cache and print their folder.
controlplane-build:
    bash tests/controlplane/build.sh

# Start a local control plane in the background; prints KUBECONFIG=<path>.
cluster-up:
    bash tests/controlplane/up.sh --detach

# Stop the control plane started by cluster-up and remove its files.
cluster-down:
    bash tests/controlplane/down.sh

# Benchmark against a fresh local control plane: just bench 5000 16 10
bench namespaces="5000" concurrency="16" service_accounts="10":
    cargo run --release --locked --example bench -- --namespaces {{namespaces}} --concurrency {{concurrency}} --service-accounts-per-namespace {{service_accounts}}

# Render the kustomize base (with the kubectl the control-plane build provides).
manifests:
    "$(bash tests/controlplane/build.sh)/kubectl" kustomize manifests/
