# syntax=docker/dockerfile:1
# csc-server in a container (README "Deployment"). Two stages:
#   builder  Rust on Debian bookworm: `cargo build --release` of the csc-server binary
#   runtime  Debian bookworm-slim with the binary, SoftHSM2 and the libraries the binary links
#            (libssl3, libpq5; ca-certificates for the OTP webhook), and nothing else
# Build from the repository root:  docker build -t csc-server .
# The image serves plain HTTP on 0.0.0.0:8080 inside its network: put a TLS proxy in front of it
# (deploy/compose.yaml does, with Caddy).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p csc-api --bin csc-server \
 && install -m 0755 target/release/csc-server /usr/local/bin/csc-server

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# Debian's own versions of a stable release (security updates come with a rebuild): not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 libssl3 libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 csc \
 && useradd --system --uid 10001 --gid csc --home-dir /var/lib/csc-server --no-create-home \
      --shell /usr/sbin/nologin csc \
 && install -d -m 0700 -o csc -g csc /var/lib/csc-server
COPY --from=builder /usr/local/bin/csc-server /usr/local/bin/csc-server
# The data directory: the SoftHSM2 token, token.pin, dev-ca.json, tsa.json, the audit seal file
# (and csc.db with SQLite). Every instance that shares a token mounts the same volume.
ENV CSC_DATA_DIR=/var/lib/csc-server \
    CSC_LISTEN=0.0.0.0:8080
# numeric, so that a runtime can check that it is not root (runAsNonRoot)
USER 10001:10001
WORKDIR /var/lib/csc-server
VOLUME ["/var/lib/csc-server"]
EXPOSE 8080
# No curl in the image: the binary probes its own GET /health (the address from CSC_LISTEN).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["csc-server", "health"]
ENTRYPOINT ["csc-server"]
CMD ["serve"]
