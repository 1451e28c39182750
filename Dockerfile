# syntax=docker/dockerfile:1
#
# The weft image: one static-ish binary on Debian slim, run as a non-root user.
#
#   docker build -t weft:0.1.0 .
#   docker run --rm -p 8080:8080 -e WEFT_SERVER_LISTEN=0.0.0.0:8080 weft:0.1.0
#
# With no configuration the container is one node on the embedded store, under
# /var/lib/weft/data (mount a volume there to keep it). The Helm chart (helm/weft)
# mounts /etc/weft/weft.toml and sets WEFT_CONFIG; `weft migrate` and
# `weft cluster-ca --out DIR` are the other subcommands. The image sets no WEFT_*
# variable, since they would override a mounted config file.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=trixie

# --- build ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
ARG RUST_VERSION
# rust-toolchain.toml names this same toolchain plus rustfmt and clippy, which a
# release build does not need: use the image's toolchain as it is.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never
WORKDIR /src
# The whole workspace (the server and loadtest/, a member), less .dockerignore.
COPY . .
# Caches keep the crate downloads and the target directory between builds; the binary
# is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/weft /out/weft

# --- runtime -------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 weft \
 && useradd --system --uid 10001 --gid weft --home-dir /var/lib/weft \
      --no-create-home --shell /usr/sbin/nologin weft \
 && install -d -o weft -g weft -m 0750 /var/lib/weft \
 && install -d -m 0755 /etc/weft /usr/share/weft/config
COPY --from=build /out/weft /usr/local/bin/weft
# The documented configs, for reference (`weft --config /usr/share/weft/config/cluster.toml`).
COPY config/default.toml config/cluster.toml /usr/share/weft/config/
LABEL org.opencontainers.image.title="weft" \
      org.opencontainers.image.description="A horizontally clustered chat server" \
      org.opencontainers.image.licenses="Apache-2.0"
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# The embedded store's default data_dir ("./data") lands in /var/lib/weft/data.
WORKDIR /var/lib/weft
# HTTP (REST, WebSockets, /healthz, /readyz, /metrics), gossip, QUIC.
EXPOSE 8080/tcp 7946/udp 7100/udp
# weft handles SIGTERM itself (drain, flush, leave), as PID 1 too.
STOPSIGNAL SIGTERM
ENTRYPOINT ["weft"]
CMD ["serve"]
