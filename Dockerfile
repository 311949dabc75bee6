# syntax=docker/dockerfile:1
# nexus-node image: `docker build -t nexus-node .` from the repository root.
# Operating notes: docs/operations.md. The compose file in deploy/ builds it.

# --- build -------------------------------------------------------------------
# Pinned to the workspace's rust-version (Cargo.toml): the oldest Rust that
# builds the locked dependencies, so a newer image is not needed to build.
# Bookworm on both stages: the binary links the builder's glibc.
FROM rust:1.89-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo loads every member's manifest even for `-p`, and
# the binary embeds the migrations (store/migrations) and the demo scenario
# (tests/fixtures/escrow-simnet.json). Node.js is not needed: the contract
# tests and the e2e suite are not part of the Rust build (.dockerignore).
COPY . .
# Cache mounts keep the registry and target directory between builds (the
# first build is long: clarity-vm and wasmtime). The target directory lives
# only in the cache, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build -p nexus-node --release --locked \
    && install -m 0755 target/release/nexus-node /usr/local/bin/nexus-node

# --- run ---------------------------------------------------------------------
# debian-slim, not distroless: HEALTHCHECK needs an HTTP client and the node
# has no health subcommand of its own, so curl comes along (a few MB). The
# binary needs only glibc and libgcc_s (outbound https goes through rustls and
# sqlx is built without TLS, so no OpenSSL either); ca-certificates is the
# root store those https calls trust (plus NEXUS_CA_CERT_PATH's, if set).
FROM debian:bookworm-slim
# Unpinned on purpose: bookworm's curl only moves for security fixes, and a
# pinned version stops building the day Debian publishes one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/nexus-node \
       --shell /usr/sbin/nologin nexus \
    && install -d -o nexus -g nexus -m 0750 /var/lib/nexus-node \
    && install -d -m 0755 /etc/nexus-node
COPY --from=build /usr/local/bin/nexus-node /usr/local/bin/nexus-node

# Inside a container the loopback defaults (127.0.0.1) are unreachable from
# outside, so both listeners bind every interface; publish them with care
# (deploy/compose.yaml publishes them on the host's loopback only).
# The SQLite path matters only on the embedded default (no NEXUS_DATABASE_URL):
# mount a volume on /var/lib/nexus-node to keep that history.
ENV NEXUS_API_ADDR=0.0.0.0:8402 \
    NEXUS_OBSERVER_ADDR=0.0.0.0:8403 \
    NEXUS_SQLITE_PATH=/var/lib/nexus-node/nexus.sqlite
# 8402: HTTP API, /health, /metrics, /ws, /x402. 8403: stacks-node's observer POSTs.
EXPOSE 8402 8403

# Numeric, so runtimes that check runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/nexus-node

# /health answers 503 when Redis or the database does not answer, 200 otherwise
# (also while the RPC is down: "degraded" still ingests and serves). The port
# is read from NEXUS_API_ADDR so overriding it does not break the check.
# start-period covers the migrations and, on the embedded default, loading
# the memory state from history.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${NEXUS_API_ADDR##*:}/health\" || exit 1"]

# The config file is optional (a missing file is no error); webhooks can only
# be set there, so mount one at this path when you need them.
ENTRYPOINT ["/usr/local/bin/nexus-node", "--config", "/etc/nexus-node/nexus.toml"]
CMD ["run"]
