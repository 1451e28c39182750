#!/usr/bin/env bash
# A 3-node weft cluster on loopback, for trying weft out:
#
#   bash scripts/cluster.sh up      # Redis + Cassandra, certificates, schema, 3 nodes
#   bash scripts/cluster.sh status  # the members as node 1 sees them
#   bash scripts/cluster.sh down    # stop the 3 nodes (services stay; scripts/services.sh down)
#
# WEFT_BIN=/path/to/weft runs that binary instead of building target/release/weft with cargo.
# WEFT_METRICS_TOKEN, if set, is passed to the nodes as the /metrics token (without it,
# /metrics takes the admin key, WEFT_ADMIN_KEY, default local-admin-key).
#
# Nodes: HTTP/WebSocket on 127.0.0.1:8081-8083, gossip on UDP 7947-7949,
# QUIC on UDP 7101-7103. State (certificates, logs, pids) in .cluster/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE="$ROOT/.cluster"
BIN=${WEFT_BIN:-$ROOT/target/release/weft}
ADMIN_KEY=${WEFT_ADMIN_KEY:-local-admin-key}

# The environment of node $1, as `export` lines.
env_for() {
    local i=$1 nodes
    eval "$(bash scripts/services.sh env)"
    nodes=$(echo "$WEFT_TEST_CQL_NODES" | sed 's/\([^,]*\)/"\1"/g')
    cat <<ENV
export WEFT_SERVER_LISTEN='127.0.0.1:808$i'
export WEFT_SERVER_ADMIN_KEY='$ADMIN_KEY'
export WEFT_STORE_BACKEND='cql'
export WEFT_CQL_NODES='[$nodes]'
export WEFT_CQL_KEYSPACE='weft_local'
export WEFT_REDIS_URL='$WEFT_TEST_REDIS_URL'
export WEFT_REDIS_KEY_PREFIX='weft-local'
export WEFT_CLUSTER_ENABLED='true'
export WEFT_CLUSTER_NODE_ID='node-$i'
export WEFT_GOSSIP_GOSSIP_LISTEN='127.0.0.1:794$((6 + i))'
export WEFT_GOSSIP_SEEDS='["127.0.0.1:7947"]'
export WEFT_QUIC_LISTEN='127.0.0.1:710$i'
export WEFT_TLS_CA_CERT='$STATE/certs/ca.pem'
export WEFT_TLS_NODE_CERT='$STATE/certs/node.pem'
export WEFT_TLS_NODE_KEY='$STATE/certs/node.key'
export WEFT_GATEWAY_SEND_RATE_PER_SEC='${WEFT_GATEWAY_SEND_RATE_PER_SEC:-20}'
export WEFT_GATEWAY_SEND_BURST='${WEFT_GATEWAY_SEND_BURST:-40}'
export WEFT_GATEWAY_FRAME_RATE_PER_SEC='${WEFT_GATEWAY_FRAME_RATE_PER_SEC:-50}'
export WEFT_GATEWAY_FRAME_BURST='${WEFT_GATEWAY_FRAME_BURST:-100}'
ENV
    if [ -n "${WEFT_METRICS_TOKEN:-}" ]; then
        echo "export WEFT_METRICS_TOKEN='$WEFT_METRICS_TOKEN'"
    fi
}

up() {
    bash scripts/services.sh up
    if [ -z "${WEFT_BIN:-}" ]; then
        cargo build --release --bin weft
    fi
    [ -x "$BIN" ] || { echo "no weft binary at $BIN" >&2; exit 1; }
    mkdir -p "$STATE/logs"
    [ -f "$STATE/certs/ca.pem" ] || "$BIN" cluster-ca --out "$STATE/certs"
    (eval "$(env_for 1)" && "$BIN" migrate)
    for i in 1 2 3; do
        if [ -f "$STATE/node-$i.pid" ] && kill -0 "$(cat "$STATE/node-$i.pid")" 2>/dev/null; then
            echo "node-$i already running"
            continue
        fi
        (eval "$(env_for "$i")" && exec nohup "$BIN" serve >"$STATE/logs/node-$i.log" 2>&1) &
        echo $! >"$STATE/node-$i.pid"
    done
    for i in 1 2 3; do
        for _ in $(seq 1 100); do
            curl -fsS "http://127.0.0.1:808$i/readyz" >/dev/null 2>&1 && break
            sleep 0.2
        done
        echo "node-$i: http://127.0.0.1:808$i (log $STATE/logs/node-$i.log)"
    done
    echo "admin key: $ADMIN_KEY"
    # Gossip converges within a few rounds.
    for _ in $(seq 1 50); do
        [ "$(status | grep -o '"is_self"' | wc -l)" -ge 3 ] && break
        sleep 0.2
    done
    status
}

status() {
    curl -fsS -H "Authorization: Bearer $ADMIN_KEY" http://127.0.0.1:8081/api/v1/cluster; echo
}

down() {
    for i in 1 2 3; do
        if [ -f "$STATE/node-$i.pid" ]; then
            kill "$(cat "$STATE/node-$i.pid")" 2>/dev/null || true
            rm -f "$STATE/node-$i.pid"
        fi
    done
    echo "stopped the nodes (services still run: scripts/services.sh down)"
}

case "${1:-up}" in
up) up ;;
status) status ;;
down) down ;;
*) echo "usage: $0 up|status|down" >&2; exit 64 ;;
esac
