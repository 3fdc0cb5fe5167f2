# syntax=docker/dockerfile:1
# honcho_exporter: a static (musl) binary in a distroless image, running as uid 65532.
#   docker build -t honcho-exporter:0.1.0 .
#   docker run --rm -p 127.0.0.1:21794:21794 honcho-exporter:0.1.0 --honcho.url=http://honcho:8000
# The same build without Docker (what scripts/test.sh proves):
#   rustup target add x86_64-unknown-linux-musl && apt-get install musl-tools
#   cargo build --release --locked --target x86_64-unknown-linux-musl -p honcho_exporter --no-default-features --bin honcho_exporter

FROM rust:1-bookworm AS builder
# musl-tools: musl-gcc for the few C files in the dependency tree (ring). Not version-pinned:
# bookworm's musl only gets security fixes, and a pin would break the build at the next one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# --no-default-features: the production image carries no simulator (no `demo`, no /_sim API).
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p honcho_exporter --no-default-features --bin honcho_exporter \
 && cp target/x86_64-unknown-linux-musl/release/honcho_exporter /honcho_exporter

# distroless/static: CA certificates (for an https Honcho), /etc/passwd with the nonroot user,
# tzdata; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /honcho_exporter /usr/local/bin/honcho_exporter
USER 65532:65532
EXPOSE 21794
ENTRYPOINT ["/usr/local/bin/honcho_exporter"]
