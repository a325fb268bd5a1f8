# Developer recipes (https://github.com/casey/just: `cargo install just`). Each recipe is a thin
# wrapper over a command that also works without just.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build the release binary.
build:
    cargo build --release --locked

# Every test (set-up included: Debian packages, Go-built components): unit, property,
# integration tests on a real control plane, node tests on a real kubelet, on v1.37 and v1.35.
test:
    bash tests/run.sh

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

# Start a local one-node cluster (control plane, containerd, kubelet) in the background;
# prints KUBECONFIG=<path>. `just cluster-up ""` starts the control plane alone.
cluster-up node="--node":
    bash tests/controlplane/up.sh {{node}} --detach

# Stop the control plane started by cluster-up and remove its files.
cluster-down:
    bash tests/controlplane/down.sh

# Benchmark against a fresh local control plane: just bench 5000 16 10
bench namespaces="5000" concurrency="16" service_accounts="10":
    cargo run --release --locked --example bench -- --namespaces {{namespaces}} --concurrency {{concurrency}} --service-accounts-per-namespace {{service_accounts}}

# The watch window's rows only (a first run, an idle window, a busy window), and its latency plot
# regenerated into docs/ (docs/performance.md shows it): just bench-window 5000
bench-window namespaces="5000":
    cargo run --release --locked --example bench -- --namespaces {{namespaces}} --service-accounts-per-namespace 1 --window-only true --out bench-results
    cp bench-results/window-latency.svg docs/window-latency-{{namespaces}}.svg

# The product image without a Docker engine (buildah), from the release binary; with REF also
# pushed: just image 127.0.0.1:5000/pullsecret-reconciler:0.1.0 CERT_DIR AUTHFILE
image ref="" certs="" authfile="":
    cargo build --release --locked
    image=$(bash tests/images/build.sh product) && echo "$image" && \
      if [ -n "{{ref}}" ]; then bash tests/images/build.sh push "$image" "{{ref}}" "{{certs}}" "{{authfile}}" && echo "pushed {{ref}}"; fi

# Render the kustomize base (with the kubectl the control-plane build provides).
manifests:
    "$(bash tests/controlplane/build.sh)/kubectl" kustomize manifests/

# Regenerate docs/configuration.md from the --help table (src/config/help.rs); a unit test checks it.
docs:
    UPDATE_DOCS=1 cargo test --locked --lib the_configuration_page_is_made_from_the_help_table
