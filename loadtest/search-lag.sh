#!/usr/bin/env bash
# Does the search index keep up with the batch writer? A benchmark, not a test.
#
#   bash loadtest/search-lag.sh
#
# Builds weft and weft-load in release, then WEFT_BENCH_RUNS times (default 3) per setting:
# starts an embedded node on 127.0.0.1:$WEFT_BENCH_PORT (18090) with search on (tantivy,
# the default) and with search off (`[search] backend = "none"`), runs the direct-chat
# scenario at its maximum rate (1,000 pairs, one unacknowledged send per socket) for
# WEFT_BENCH_DURATION seconds (20), samples /metrics every 0.5 s, and reports:
#   - the scenario's acked messages/s (the cost of indexing on sending, on vs off);
#   - the largest weft_search_index_lag_seconds and _messages seen during the run;
#   - how long after the run until weft_search_indexed_total caught up with
#     weft_messages_persisted_total (every committed message indexed).
# Medians over the runs. Every step has a time limit; the node and its data are removed.
# WEFT_BENCH_SEARCH_BACKENDS ("embedded none") picks the settings; other WEFT_SEARCH_*
# variables (batch size, delay) reach the node as they are.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PORT=${WEFT_BENCH_PORT:-18090}
RUNS=${WEFT_BENCH_RUNS:-3}
DURATION=${WEFT_BENCH_DURATION:-20}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-search-lag.XXXXXX")
NODE_PID=

log() { printf '[search-lag] %s\n' "$*" >&2; }

stop_node() {
    [ -n "$NODE_PID" ] || return 0
    kill -TERM "$NODE_PID" 2>/dev/null || true
    local _
    for _ in $(seq 1 150); do
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=
}
cleanup() {
    local rc=$?
    stop_node
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building weft and weft-load (release)"
timeout 1800 cargo build --release --workspace --bin weft --bin weft-load >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WEFT=$TARGET/release/weft
LOAD=$TARGET/release/weft-load

# metric NAME: its value on the node (0 when absent).
metric() {
    curl -sf --max-time 2 "http://127.0.0.1:$PORT/metrics" |
        awk -v n="$1" '$1 == n { v = $2 } END { printf "%s", (v == "" ? 0 : v) }'
}

# run BACKEND FILE: one node, one load run; appends "rate max_lag_s max_lag_msgs catch_up_s" to FILE.
run() {
    local backend=$1 file=$2
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    env WEFT_SERVER_LISTEN="127.0.0.1:$PORT" WEFT_STORE_DATA_DIR="$WORK/data" \
        WEFT_SEARCH_BACKEND="$backend" WEFT_SERVER_SHUTDOWN_GRACE_MS=5000 \
        WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 WEFT_GATEWAY_SEND_BURST=1000000 \
        WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 WEFT_GATEWAY_FRAME_BURST=1000000 \
        WEFT_LOG_LEVEL=warn "$WEFT" serve >"$WORK/node.log" 2>&1 &
    NODE_PID=$!
    local _
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    timeout $((2 * DURATION + 120)) "$LOAD" dm --pairs 1000 --rate 0 --window 1 \
        --url "http://127.0.0.1:$PORT" --duration-secs "$DURATION" --warmup-secs 2 \
        --out "$WORK/load.json" >"$WORK/load.md" 2>"$WORK/load.err" &
    local load=$! max_s=0 max_m=0
    while kill -0 "$load" 2>/dev/null; do
        local s m
        s=$(metric weft_search_index_lag_seconds)
        m=$(metric weft_search_index_lag_messages)
        max_s=$(awk -v a="$max_s" -v b="$s" 'BEGIN { print (b > a ? b : a) }')
        max_m=$(awk -v a="$max_m" -v b="$m" 'BEGIN { print (b > a ? b : a) }')
        sleep 0.5
    done
    wait "$load" || true
    local rate
    rate=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d.get("sent_per_sec") or d.get("acked_per_sec") or 0))' "$WORK/load.json" 2>/dev/null || echo 0)
    local start catch=-1
    start=$(date +%s.%N)
    if [ "$backend" != none ]; then
        for _ in $(seq 1 1200); do
            local persisted indexed
            persisted=$(metric weft_messages_persisted_total)
            indexed=$(metric weft_search_indexed_total)
            if awk -v p="$persisted" -v i="$indexed" 'BEGIN { exit !(i >= p) }'; then
                catch=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
                break
            fi
            sleep 0.1
        done
    fi
    echo "$rate $max_s $max_m $catch" >>"$file"
    stop_node
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "-") }'; }

echo "| search | dm max, msg/s | max index lag, s | max index lag, messages | caught up after the run, s |"
echo "|---|---|---|---|---|"
for backend in ${WEFT_BENCH_SEARCH_BACKENDS:-embedded none}; do
    file=$WORK/$backend.txt
    : >"$file"
    for r in $(seq 1 "$RUNS"); do
        log "search=$backend run $r/$RUNS"
        run "$backend" "$file"
    done
    log "$backend runs: $(tr '\n' ';' <"$file")"
    cols=()
    for c in 1 2 3 4; do
        cols+=("$(awk -v c="$c" '{ print $c }' "$file" | median)")
    done
    echo "| $backend | ${cols[0]} | ${cols[1]} | ${cols[2]} | ${cols[3]} |"
done
