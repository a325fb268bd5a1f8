# syntax=docker/dockerfile:1
# Multi-stage, multi-architecture build: the compiler runs on the build machine's own platform
# ($BUILDPLATFORM) and cross-compiles for each target ($TARGETARCH: amd64 or arm64); only the binary
# ships, on distroless (glibc, CA certificates, no shell), as a non-root user.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t REGISTRY/pullsecret-reconciler:0.1.0 --push .
#
# Optional: kubelet credential-provider plugins in the image, for PULLSECRET_CREDENTIAL_PROVIDER_*
# (docs/sources.md#short-lived-cloud-tokens-credential-provider-plugins): --build-arg CREDENTIAL_PROVIDERS=ecr builds AWS's
# ecr-credential-provider from its Go module (k8s.io/cloud-provider-aws) into
# /usr/local/lib/pullsecret-reconciler/credential-providers/. To add another plugin, add a line to
# that stage that builds it from its module into /out.
#
# Release tags are versions, never `latest`. For releases, pin both base images by digest as well
# (docker buildx imagetools inspect <image>).

FROM --platform=$BUILDPLATFORM docker.io/library/rust:1.95.0-slim-bookworm AS build
ARG TARGETARCH
WORKDIR /src
# The Rust target and, when it differs from the build machine's, Debian's cross C toolchain
# (ring compiles C and assembly for the target).
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; deb=x86-64-linux-gnu ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; deb=aarch64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH (amd64 or arm64)" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /rust-target; \
    if [ "$(uname -m)-linux-gnu" != "$gnu" ]; then \
      apt-get update && apt-get install -y --no-install-recommends "gcc-$deb" "libc6-dev-${TARGETARCH}-cross" \
      && rm -rf /var/lib/apt/lists/*; \
      env_name=$(echo "$triple" | tr 'a-z-' 'A-Z_'); \
      printf 'export CARGO_TARGET_%s_LINKER=%s-gcc CC_%s=%s-gcc\n' \
        "$env_name" "$gnu" "$(echo "$triple" | tr '-' '_')" "$gnu" > /cross-env; \
    else \
      : > /cross-env; \
    fi; \
    rustup target add "$triple"
# Dependencies first, so source edits reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && . /cross-env && cargo build --release --locked --target "$(cat /rust-target)" \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && . /cross-env \
    && cargo build --release --locked --target "$(cat /rust-target)" \
    && cp "target/$(cat /rust-target)/release/pullsecret-reconciler" /pullsecret-reconciler

# Credential-provider plugins (none unless asked for), cross-compiled like the binary.
FROM --platform=$BUILDPLATFORM docker.io/library/golang:1.26-bookworm AS credential-providers
ARG TARGETOS
ARG TARGETARCH
ARG CREDENTIAL_PROVIDERS=""
# The plugins' versions are pinned by the same go.mod/go.sum the tests build them from.
COPY tests/tools/ecr-credential-provider/ /tools/ecr-credential-provider/
RUN set -eu; mkdir -p /out; \
    for p in $(echo "$CREDENTIAL_PROVIDERS" | tr ',' ' '); do \
      case "$p" in \
        ecr) cd /tools/ecr-credential-provider \
             && GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
                  -o /out/ecr-credential-provider k8s.io/cloud-provider-aws/cmd/ecr-credential-provider ;; \
        *) echo "unknown credential provider $p (known: ecr)" >&2; exit 1 ;; \
      esac; \
    done

# The runtime image is the target platform's own.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /pullsecret-reconciler /usr/local/bin/pullsecret-reconciler
COPY --from=credential-providers /out/ /usr/local/lib/pullsecret-reconciler/credential-providers/
# distroless "nonroot" is uid/gid 65532, matching the CronJob's securityContext.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pullsecret-reconciler"]
