#!/usr/bin/env bash
# One small run of every weft-load scenario, failing on any lost, duplicated or
# failed message (a smoke run for CI, not a speed measurement):
#
#   fanout, dm, history, idle   against one node on the embedded store;
#   cluster, storm              against three nodes of scripts/cluster.sh (Redis + Cassandra),
#                               storm killing one of them.
#
# Uses the debug binaries (built here) unless WEFT_BIN and WEFT_LOAD_BIN name others.
# Loopback only; every run is bounded; every node it starts is stopped on exit. The
# cluster part takes scripts/cluster.sh's ports (8081-8083): a cluster already running
# there is stopped first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${WEFT_BIN:-$ROOT/target/debug/weft}
LOAD=${WEFT_LOAD_BIN:-$ROOT/target/debug/weft-load}
PORT=${WEFT_SMOKE_PORT:-18480}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-smoke.XXXXXX")
NODE_PID=

log() { printf '[smoke] %s\n' "$*" >&2; }

cleanup() {
    local rc=$?
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
    WEFT_BIN=$BIN bash scripts/cluster.sh down >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

if [ -z "${WEFT_BIN:-}" ] || [ -z "${WEFT_LOAD_BIN:-}" ]; then
    log "building weft and weft-load (debug; a no-op when they are current)"
    cargo build -p weft --bin weft && cargo build -p weft-loadtest --bin weft-load
fi

# Sends are paced well below these, which only lift the per-user and per-session defaults.
export WEFT_GATEWAY_SEND_RATE_PER_SEC=1000 WEFT_GATEWAY_SEND_BURST=1000
export WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000 WEFT_GATEWAY_FRAME_BURST=1000

log "one embedded node on 127.0.0.1:$PORT"
WEFT_SERVER_LISTEN=127.0.0.1:$PORT WEFT_STORE_DATA_DIR="$WORK/data" WEFT_LOG_LEVEL=warn \
    "$BIN" serve >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { tail -20 "$WORK/node.log"; exit 1; }

short=(--duration-secs 2 --warmup-secs 1 --drain-secs 10 --check)
log "fanout"
"$LOAD" fanout --url "http://127.0.0.1:$PORT" --members 20 --senders 2 --rate 40 "${short[@]}"
log "dm"
"$LOAD" dm --url "http://127.0.0.1:$PORT" --pairs 20 --rate 40 "${short[@]}"
log "history (REST reads: old pages from the store, then the newest page)"
"$LOAD" history --url "http://127.0.0.1:$PORT" --messages 300 --concurrency 4 \
    --duration-secs 1 --warmup-secs 1 --check
log "idle (two generator processes, two source addresses)"
"$LOAD" idle --url "http://127.0.0.1:$PORT" --connections 400 --processes 2 --sources 2 --hold-secs 1
kill "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=

log "three cluster nodes (scripts/cluster.sh)"
WEFT_BIN=$BIN bash scripts/cluster.sh down >/dev/null 2>&1 || true
sleep 1
WEFT_BIN=$BIN bash scripts/cluster.sh up >"$WORK/cluster.log" 2>&1 || { tail -30 "$WORK/cluster.log"; exit 1; }
nodes=http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083
key=(--admin-key local-admin-key)
log "cluster"
"$LOAD" cluster --url http://127.0.0.1:8081 --spread "$nodes" "${key[@]}" --members 30 --senders 3 --rate 30 "${short[@]}"
log "storm (node 3 killed)"
"$LOAD" storm --url http://127.0.0.1:8081 --spread "$nodes" "${key[@]}" \
    --kill-pid "$(cat .cluster/node-3.pid)" --clients 90 --chats 9 --rate 30 \
    --before-secs 2 --after-secs 3 --settle-secs 60
log "every scenario ran with nothing lost or duplicated"
