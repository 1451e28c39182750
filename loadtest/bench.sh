#!/usr/bin/env bash
# Delivery and history benchmarks: weft-load against weft on this machine.
#
#   bash loadtest/bench.sh [embedded|cql|cluster|all]      (default: all)
#
# Builds `weft` and `weft-load` in release (reusing target/), then per mode starts the
# node(s) on loopback ports with the per-user send limit raised (the generator sends far
# more than 20 messages/s per user), waits for /readyz, runs each scenario
# WEFT_BENCH_RUNS times, prints the median of each figure as markdown tables (delivery,
# then history), stops the node(s) and removes what it made. Every step has a time
# limit, so the script ends by itself.
#
#   embedded  the default node: a redb file in a fresh temporary directory;
#   cql       one node on Cassandra + Redis from scripts/services.sh (started if needed,
#             and stopped again only if this script started them), keyspace weft_bench,
#             Redis keys under weft_bench:* (deleted at the end; the keyspace stays,
#             services.sh starts Cassandra with empty data next time);
#   cluster   three nodes of scripts/cluster.sh (ports 8081-8083, Redis + Cassandra),
#             sockets spread over them (`cluster`: senders on node 1, receivers on the
#             others). A cluster already running there is stopped first.
#
# Environment (all optional):
#   WEFT_BENCH_PORT (18080)          the node's port on 127.0.0.1
#   WEFT_BENCH_RUNS (3)              runs of each scenario
#   WEFT_BENCH_DURATION (10)         measured seconds of each run, after a warm-up of
#   WEFT_BENCH_WARMUP (2)            seconds
#   WEFT_BENCH_FANOUT_RATE (100)     fixed rate of the 1,000-member fan-out latency row, msg/s
#   WEFT_BENCH_DM_RATE (5000)        fixed rate of the direct-chat latency row, messages/s
#   WEFT_BENCH_OUT                   keep each run's JSON and the node logs in this directory
#   WEFT_BIN, WEFT_LOAD_BIN          run these binaries (both given: nothing is built), e.g.
#                                    an older weft beside today's with today's weft-load
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PORT=${WEFT_BENCH_PORT:-18080}
RUNS=${WEFT_BENCH_RUNS:-3}
DURATION=${WEFT_BENCH_DURATION:-10}
WARMUP=${WEFT_BENCH_WARMUP:-2}
FANOUT_RATE=${WEFT_BENCH_FANOUT_RATE:-100}
DM_RATE=${WEFT_BENCH_DM_RATE:-5000}
MODES=${1:-all}
case $MODES in
all) MODES="embedded cql cluster" ;;
embedded | cql | cluster) ;;
*)
    echo "usage: $0 [embedded|cql|cluster|all]" >&2
    exit 2
    ;;
esac

# Each scenario: one line of weft-load arguments. The fixed-rate rows measure latency below
# the knee; the `--rate 0` rows send as fast as acks allow (window of unacknowledged sends
# per socket: 32 for the fan-out senders, 1 for the 2,000 direct-chat users, whose queues
# would otherwise only add latency). `history` reads pages of 50 (store, then the newest
# page from the recent cache) with 4 readers.
SCENARIOS=(
    "fanout --members 1000 --senders 10 --rate 0 --window 32"
    "fanout --members 1000 --senders 1 --rate $FANOUT_RATE"
    "fanout --members 100 --senders 1 --rate 50"
    "dm --pairs 1000 --rate $DM_RATE"
    "dm --pairs 1000 --rate 0 --window 1"
    "history --messages 2000 --per-page 50 --concurrency 4"
)
# Three nodes share the two cores: smaller chats, and the cross-node scenario.
CLUSTER_SCENARIOS=(
    "fanout --members 300 --senders 10 --rate 0 --window 32"
    "cluster --members 300 --senders 1 --rate 50"
    "cluster --members 300 --senders 10 --rate 0 --window 32"
    "dm --pairs 1000 --rate 1000"
    "history --messages 2000 --per-page 50 --concurrency 4"
)

log() { printf '[bench] %s\n' "$*" >&2; }

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench.XXXXXX")
OUT=${WEFT_BENCH_OUT:-$WORK/out}
mkdir -p "$OUT"
NODE_PID=
STARTED_FILE=$WORK/services-started

CLUSTER_UP=

stop_node() {
    if [ -n "$CLUSTER_UP" ]; then
        WEFT_BIN=$WEFT timeout 120 bash scripts/cluster.sh down >/dev/null 2>&1 || true
        CLUSTER_UP=
        NODE_PID=
        return 0
    fi
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
    if [ -s "$STARTED_FILE" ]; then
        # shellcheck disable=SC2046 # one word per service name
        timeout 180 bash scripts/services.sh down $(sort -u "$STARTED_FILE") || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# cpu_secs PID: user + system CPU seconds the process has used.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo "?"
}

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -n "${WEFT_BIN:-}" ] && [ -n "${WEFT_LOAD_BIN:-}" ]; then
    # Given binaries (another build of weft, side by side with the same client): no build.
    WEFT=$WEFT_BIN
    LOAD=$WEFT_LOAD_BIN
else
    log "building weft and weft-load (release)"
    timeout 1800 cargo build --release --workspace --bin weft --bin weft-load >&2
    WEFT=${WEFT_BIN:-$TARGET/release/weft}
    LOAD=${WEFT_LOAD_BIN:-$TARGET/release/weft-load}
fi

# start_node MODE: a node on 127.0.0.1:$PORT, ready, in the background ($NODE_PID).
start_node() {
    local mode=$1
    port_open "$PORT" && {
        log "127.0.0.1:$PORT is taken; set WEFT_BENCH_PORT"
        exit 1
    }
    # No per-user send limit or per-session frame budget in effect: the generator's users
    # send up to thousands per second.
    local env=(
        WEFT_SERVER_LISTEN="127.0.0.1:$PORT"
        # Longer than the presence debounce (3 s): sessions that closed just before the stop
        # keep the batch writer open that long.
        WEFT_SERVER_SHUTDOWN_GRACE_MS=5000
        WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000
        WEFT_GATEWAY_SEND_BURST=1000000
        WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000
        WEFT_GATEWAY_FRAME_BURST=1000000
        WEFT_LOG_LEVEL=warn
        WEFT_LOG_FORMAT=json
    )
    if [ "$mode" = cluster ]; then
        WEFT_SERVICES_STARTED_FILE=$STARTED_FILE timeout 600 bash scripts/services.sh up
        WEFT_BIN=$WEFT bash scripts/cluster.sh down >/dev/null 2>&1 || true
        # scripts/cluster.sh passes the send limits and the frame budget on to its nodes.
        WEFT_BIN=$WEFT WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 WEFT_GATEWAY_SEND_BURST=1000000 \
            WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 WEFT_GATEWAY_FRAME_BURST=1000000 \
            timeout 300 bash scripts/cluster.sh up >"$OUT/cluster-up.log" 2>&1 || {
            tail -n 30 "$OUT/cluster-up.log" >&2
            exit 1
        }
        CLUSTER_UP=1
        NODE_PID=$(cat .cluster/node-1.pid)
        log "cluster ready on 127.0.0.1:8081-8083"
        return 0
    fi
    if [ "$mode" = embedded ]; then
        mkdir -p "$WORK/data"
        env+=(WEFT_STORE_DATA_DIR="$WORK/data")
    else
        WEFT_SERVICES_STARTED_FILE=$STARTED_FILE timeout 600 bash scripts/services.sh up
        eval "$(bash scripts/services.sh env)"
        # WEFT_TEST_CQL_NODES is host:port[,host:port]; the node's env wants a TOML list.
        local nodes
        nodes=$(printf '%s' "$WEFT_TEST_CQL_NODES" | awk -F, '{ for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? "," : ""), $i }')
        env+=(
            WEFT_STORE_BACKEND=cql
            WEFT_CQL_NODES="[$nodes]"
            WEFT_CQL_KEYSPACE=weft_bench
            WEFT_REDIS_URL="$WEFT_TEST_REDIS_URL"
            WEFT_REDIS_KEY_PREFIX=weft_bench
        )
        log "weft migrate (keyspace weft_bench)"
        env "${env[@]}" timeout 120 "$WEFT" migrate >"$OUT/migrate.log" 2>&1 || {
            tail -n 20 "$OUT/migrate.log" >&2
            exit 1
        }
    fi
    env "${env[@]}" "$WEFT" serve >"$OUT/node-$mode.log" 2>&1 &
    NODE_PID=$!
    local _
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && {
            log "$mode node ready on 127.0.0.1:$PORT (pid $NODE_PID)"
            return 0
        }
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 30 "$OUT/node-$mode.log" >&2
    log "the $mode node did not become ready within 60 s"
    exit 1
}

# run_load MODE FILE ARGS...: one weft-load run against the node(s), its results in FILE.
run_load() {
    local mode=$1 file=$2
    shift 2
    local target=(--url "http://127.0.0.1:$PORT")
    if [ "$mode" = cluster ]; then
        target=(--url http://127.0.0.1:8081 --admin-key local-admin-key)
        # History reads go to one node; everything else spreads its sockets.
        [ "$1" = history ] ||
            target+=(--spread "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083")
    fi
    local timing=(--duration-secs "$DURATION" --warmup-secs "$WARMUP")
    timeout $((2 * (WARMUP + DURATION) + 180)) "$LOAD" "$@" "${target[@]}" "${timing[@]}" --out "$file" >&2
}

# forget_redis_keys: the weft_bench:* keys this script's node wrote.
forget_redis_keys() {
    command -v redis-cli >/dev/null 2>&1 || return 0
    local port=${WEFT_TEST_REDIS_URL##*:}
    timeout 60 redis-cli -p "${port%%/*}" --scan --pattern 'weft_bench:*' |
        timeout 60 xargs -r -n 500 redis-cli -p "${port%%/*}" del >/dev/null || true
}

SUMMARY=$OUT/summary.md
HISTORY=$OUT/history.md
: >"$SUMMARY"
"$LOAD" header --scenario history >"$HISTORY"
for mode in $MODES; do
    start_node "$mode"
    {
        echo
        echo "### $mode"
        echo
        "$LOAD" header
    } >>"$SUMMARY"
    if [ "$mode" = cluster ]; then
        scenarios=("${CLUSTER_SCENARIOS[@]}")
    else
        scenarios=("${SCENARIOS[@]}")
    fi
    s=0
    for scenario in "${scenarios[@]}"; do
        s=$((s + 1))
        files=()
        for run in $(seq 1 "$RUNS"); do
            file=$OUT/$mode-$s-$run.json
            log "$mode: weft-load $scenario (run $run of $RUNS)"
            before=$(cpu_secs "$NODE_PID")
            # One retry: a test elsewhere on the machine may pause Cassandra for a while.
            # shellcheck disable=SC2086 # the scenario is a list of words
            run_load "$mode" "$file" $scenario || {
                log "$mode: the run failed; retrying once in 30 s"
                sleep 30
                # shellcheck disable=SC2086
                run_load "$mode" "$file" $scenario
            }
            log "$mode: node CPU during the run: $(awk -v a="$before" -v b="$(cpu_secs "$NODE_PID")" 'BEGIN { printf "%.1f", b - a }') s"
            kill -0 "$NODE_PID" 2>/dev/null || {
                log "the $mode node died"
                exit 1
            }
            files+=("$file")
        done
        case $scenario in
        history*) "$LOAD" median "${files[@]}" | sed "s/^| /| $mode: /" >>"$HISTORY" ;;
        *) "$LOAD" median "${files[@]}" >>"$SUMMARY" ;;
        esac
    done
    stop_node
    if [ "$mode" = cql ]; then
        forget_redis_keys
    fi
    if [ "$mode" != cluster ]; then
        warnings=$(grep -c -E '"level":"(WARN|ERROR)"' "$OUT/node-$mode.log" || true)
        log "$mode node log: $warnings warning/error lines ($OUT/node-$mode.log)"
    fi
done

echo "Medians of $RUNS runs, ${DURATION} s measured after ${WARMUP} s of warm-up; errors, missing and duplicates summed over the runs:"
cat "$SUMMARY"
echo
echo "History (pages of 50; store: old pages, newest: the first page, from the recent cache):"
echo
cat "$HISTORY"
