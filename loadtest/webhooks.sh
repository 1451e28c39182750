#!/usr/bin/env bash
# Webhook benchmarks: weft-load against one embedded weft node on this machine.
#
#   bash loadtest/webhooks.sh
#
# Builds `weft` and `weft-load` in release (or runs WEFT_BIN and WEFT_LOAD_BIN), starts one
# embedded node as loadtest/bench.sh does (loopback, send limits and frame budget raised)
# that also accepts http:// loopback webhooks (WEFT_WEBHOOKS_ALLOW_HTTP=true,
# WEFT_WEBHOOKS_ALLOW_PRIVATE=true), then runs, WEFT_BENCH_RUNS times and alternated (every
# scenario once per round, so with and without a webhook see the same machine):
#
#   fanout   --members 1000 --senders 10 --rate $FANOUT_RATE            without, then with --webhook
#   dm       --pairs 1000 --rate $DM_RATE                               without, then with --webhook
#   webhooks --chats C --rate R  (C in $CHATS, R in $RATES)             a webhook for message.created
#   webhooks --chats C --rate R --baseline                              the same sends, no webhook
#   webhooks --chats C --rate 0 --window 32                             as fast as acks allow
#
# and prints the medians (markdown: the delivery table, with/without rows with node CPU per
# delivery, the webhooks table) and each run's figures. Every step has a time limit; the node
# is stopped and the temporary directory removed at the end. About 35 minutes with the defaults
# on 2 cores: the max-rate runs wait for their backlog (a webhook drain stops early when no
# event came for 20 s, e.g. when the node dropped events before its queue).
#
# Environment (all optional):
#   WEFT_BENCH_PORT (18480)          the node's port on 127.0.0.1
#   WEFT_BENCH_RUNS (3)              rounds
#   WEFT_BENCH_DURATION (10)         measured seconds of each run, after a warm-up of
#   WEFT_BENCH_WARMUP (2)            seconds
#   WEFT_BENCH_FANOUT_RATE (100)     bench.sh's 1,000-member latency row, msg/s (10 senders here)
#   WEFT_BENCH_DM_RATE (5000)        bench.sh's direct-chat rate, msg/s
#   WEFT_WEBHOOK_RATES ("500 2000")  fixed rates of the webhooks scenario, msg/s
#   WEFT_WEBHOOK_CHATS ("16 1")      chats (lanes) of the webhooks scenario
#   WEFT_WEBHOOK_DRAIN (300)         seconds a run waits at most, after sending, for its events
#   WEFT_BENCH_OUT                   keep each run's JSON and the node log in this directory
#   WEFT_BIN, WEFT_LOAD_BIN          run these binaries (both given: nothing is built)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PORT=${WEFT_BENCH_PORT:-18480}
RUNS=${WEFT_BENCH_RUNS:-3}
DURATION=${WEFT_BENCH_DURATION:-10}
WARMUP=${WEFT_BENCH_WARMUP:-2}
FANOUT_RATE=${WEFT_BENCH_FANOUT_RATE:-100}
DM_RATE=${WEFT_BENCH_DM_RATE:-5000}
RATES=${WEFT_WEBHOOK_RATES:-500 2000}
CHATS=${WEFT_WEBHOOK_CHATS:-16 1}
DRAIN=${WEFT_WEBHOOK_DRAIN:-300}

log() { printf '[webhooks] %s\n' "$*" >&2; }

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi

# Each scenario: a short name (file names), then its weft-load arguments.
SCENARIOS=(
    "fanout|fanout --members 1000 --senders 10 --rate $FANOUT_RATE"
    "fanout-webhook|fanout --members 1000 --senders 10 --rate $FANOUT_RATE --webhook"
    "dm|dm --pairs 1000 --rate $DM_RATE"
    "dm-webhook|dm --pairs 1000 --rate $DM_RATE --webhook"
)
for chats in $CHATS; do
    for rate in $RATES; do
        SCENARIOS+=(
            "webhooks-$chats-$rate|webhooks --chats $chats --rate $rate"
            "webhooks-$chats-$rate-baseline|webhooks --chats $chats --rate $rate --baseline"
        )
    done
    SCENARIOS+=("webhooks-$chats-max|webhooks --chats $chats --rate 0 --window 32")
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-webhooks.XXXXXX")
OUT=${WEFT_BENCH_OUT:-$WORK/out}
mkdir -p "$OUT"
NODE_PID=

stop_node() {
    [ -n "$NODE_PID" ] || return 0
    if kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        local _
        for _ in $(seq 1 150); do
            kill -0 "$NODE_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$NODE_PID" 2>/dev/null; then
            log "node (pid $NODE_PID) still running after 15 s; SIGKILL"
            kill -KILL "$NODE_PID" 2>/dev/null || true
        fi
    fi
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

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -n "${WEFT_BIN:-}" ] && [ -n "${WEFT_LOAD_BIN:-}" ]; then
    WEFT=$WEFT_BIN
    LOAD=$WEFT_LOAD_BIN
else
    log "building weft and weft-load (release)"
    timeout 1800 cargo build --release --workspace --bin weft --bin weft-load >&2
    WEFT=${WEFT_BIN:-$TARGET/release/weft}
    LOAD=${WEFT_LOAD_BIN:-$TARGET/release/weft-load}
fi

if port_open "$PORT"; then
    log "127.0.0.1:$PORT is taken; set WEFT_BENCH_PORT"
    exit 1
fi
mkdir -p "$WORK/data"
env WEFT_SERVER_LISTEN="127.0.0.1:$PORT" \
    WEFT_SERVER_SHUTDOWN_GRACE_MS=5000 \
    WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 \
    WEFT_GATEWAY_SEND_BURST=1000000 \
    WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 \
    WEFT_GATEWAY_FRAME_BURST=1000000 \
    WEFT_WEBHOOKS_ALLOW_HTTP=true \
    WEFT_WEBHOOKS_ALLOW_PRIVATE=true \
    WEFT_LOG_LEVEL=warn \
    WEFT_LOG_FORMAT=json \
    WEFT_STORE_DATA_DIR="$WORK/data" \
    "$WEFT" serve >"$OUT/node.log" 2>&1 &
NODE_PID=$!
ready=
for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
        ready=1
        break
    fi
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.2
done
if [ -z "$ready" ]; then
    tail -n 30 "$OUT/node.log" >&2
    log "the node did not become ready within 60 s"
    exit 1
fi
log "node ready on 127.0.0.1:$PORT (pid $NODE_PID)"

for run in $(seq 1 "$RUNS"); do
    for entry in "${SCENARIOS[@]}"; do
        name=${entry%%|*}
        args=${entry#*|}
        file=$OUT/$name-$run.json
        log "round $run of $RUNS: weft-load $args"
        # shellcheck disable=SC2086 # the arguments are a list of words
        timeout $((2 * (WARMUP + DURATION) + DRAIN + 240)) "$LOAD" $args \
            --url "http://127.0.0.1:$PORT" --server-pid "$NODE_PID" \
            --duration-secs "$DURATION" --warmup-secs "$WARMUP" --webhook-drain-secs "$DRAIN" \
            --out "$file" >>"$OUT/rows.md" 2>>"$OUT/weft-load.log" || {
            tail -n 20 "$OUT/weft-load.log" >&2
            log "the run failed"
            exit 1
        }
        tail -n 1 "$OUT/rows.md" >&2
        kill -0 "$NODE_PID" 2>/dev/null || {
            log "the node died"
            exit 1
        }
    done
done

runs() { for run in $(seq 1 "$RUNS"); do echo "$OUT/$1-$run.json"; done; }

echo "Medians of $RUNS alternated runs, ${DURATION} s measured after ${WARMUP} s of warm-up; errors, missing, duplicates and out of order summed over the runs."
echo
"$LOAD" header
for name in fanout fanout-webhook dm dm-webhook; do
    # shellcheck disable=SC2046 # one file a word
    "$LOAD" median $(runs "$name")
done
echo
echo "With / without a webhook for every event (medians; node CPU over the measured window):"
echo
"$LOAD" header --scenario versus | sed 's/| server |/| variant |/'
# shellcheck disable=SC2046
"$LOAD" compare --load "fanout 1000 members, 10 senders, $FANOUT_RATE msg/s" \
    --runs $(runs fanout-webhook) --base $(runs fanout)
# shellcheck disable=SC2046
"$LOAD" compare --load "dm 1000 pairs, $DM_RATE msg/s" --runs $(runs dm-webhook) --base $(runs dm)
echo
echo "Webhooks (message.created; sent_at→webhook = receipt − the message's sent_at):"
echo
"$LOAD" header --scenario webhooks
for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}
    case $name in
    webhooks-*)
        # shellcheck disable=SC2046
        "$LOAD" median $(runs "$name")
        ;;
    esac
done
if command -v jq >/dev/null 2>&1; then
    echo
    echo "Each run (round order):"
    echo
    echo "| run | sent msg/s | deliveries/s | p50 ms | p99 ms | ack p99 ms | node CPU-s | node CPU µs per delivery | webhook POSTs | webhook events/s | sent_at→webhook p50 / p99 ms | drain events/s | missing | duplicates | out of order |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for entry in "${SCENARIOS[@]}"; do
        name=${entry%%|*}
        for run in $(seq 1 "$RUNS"); do
            jq -r --arg run "$name-$run" '
                def f(d): if . == null then "–" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
                (.webhook // {}) as $w
                | "| \($run) | \(.sent_per_sec | f(0)) | \(.deliveries_per_sec // null | f(0)) | \(.latency_ms.p50 // null | f(2)) | \(.latency_ms.p99 // null | f(2)) | \(.ack_latency_ms.p99 | f(2)) | \(.node_cpu_secs | f(2)) | \(if (.deliveries // 0) > 0 and .node_cpu_secs != null then (.node_cpu_secs * 1e6 / .deliveries | f(1)) else "–" end) | \($w.posts // null | f(0)) | \($w.events_per_sec // null | f(0)) | \($w.persist_latency_ms.p50 // null | f(2)) / \($w.persist_latency_ms.p99 // null | f(2)) | \(if ($w.last_after_secs // 0) > 1 then ($w.drain_events_per_sec | f(0)) else "–" end) | \(.missing // $w.missing // 0)\(if .webhook != null and .scenario != "webhooks" then " (webhook \($w.missing))" else "" end)\(if ($w.node_notices_dropped // 0) > 0 then " (node dropped \($w.node_notices_dropped))" else "" end) | \(.duplicates // $w.duplicates // 0)\(if .webhook != null and .scenario != "webhooks" then " (webhook \($w.duplicates))" else "" end) | \($w.out_of_order // "–") |"
            ' "$OUT/$name-$run.json"
        done
    done
fi
warnings=$(grep -c -E '"level":"(WARN|ERROR)"' "$OUT/node.log" || true)
log "node log: $warnings warning/error lines ($OUT/node.log)"
