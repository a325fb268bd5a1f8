# syntax=docker/dockerfile:1
# Multi-stage build: compile with the pinned Rust toolchain, ship only the binary on distroless
# (glibc, CA certificates, no shell), running as a non-root user.
# For releases, pin both images by digest as well (docker buildx imagetools inspect <image>).

FROM docker.io/library/rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && cp target/release/pullsecret-reconciler /pullsecret-reconciler

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /pullsecret-reconciler /usr/local/bin/pullsecret-reconciler
# distroless "nonroot" is uid/gid 65532, matching the CronJob's securityContext.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pullsecret-reconciler"]
