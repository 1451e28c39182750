#!/usr/bin/env bash
# Side-by-side fan-out benchmark: weft and Centrifugo v6.9.1 under the same weft-load
# client and the same load, on this machine (issue 15, item 1): one node, one server after
# the other; three nodes, both up and their runs alternating.
#
#   bash loadtest/centrifugo.sh [one|three|all]      (default: all)
#
# Centrifugo (Apache-2.0) is benchmark-only: it is not a dependency of weft and this script
# is not part of CI. It is built once with
# `go install github.com/centrifugal/centrifugo/v6@v6.9.1` into
# ~/.cache/weft-services/centrifugo-6.9.1 (GOPATH, module and build caches there too) and
# reused on the next run.
#
#   one    one node each: weft on the embedded store (a fresh redb file), Centrifugo with
#          its memory engine. Loads: idle connections (memory per connection); 1,000
#          members in one chat/channel with 10 senders at WEFT_BENCH_RATE msg/s; one sender
#          socket at each of WEFT_BENCH_ONE_SENDER_RATES; and a step-up of offered rates
#          (WEFT_BENCH_STEPS, 10 senders) for the highest with p99 ≤ WEFT_BENCH_MAX_P99_MS;
#          and one sender socket pipelining its sends (a window of WEFT_BENCH_SENDER_WINDOW)
#          into a chat of WEFT_BENCH_SENDER_MEMBERS at each of WEFT_BENCH_SENDER_RATES
#          (0: as fast as acks come), for the sends acked per second and the ack latency.
#   three  three nodes each, the sockets spread over them: weft's scripts/cluster.sh
#          (Redis + Cassandra, ports 8081-8083; a cluster already there is stopped first),
#          Centrifugo with its Redis engine on the Redis of scripts/services.sh. 10 senders
#          at each of WEFT_BENCH_CLUSTER_RATES. Both clusters are up at once and their runs
#          alternate (weft, Centrifugo, weft, …), so that a busier minute of this shared
#          machine falls on both rather than on whichever ran then; the idle cluster costs
#          the other little (no sockets; gossip and Redis pings).
#
# weft runs with its per-user send limit and frame budget raised (as loadtest/bench.sh
# does); Centrifugo with history and presence off, no connection limits, a 16 MiB
# per-client queue and `allow_publish_for_client`: senders publish from their own socket
# without subscribing (as weft's sender sockets, which the node skips, get no copy) and
# each publish is acked by its reply. weft acks a send once it is persisted; Centrifugo
# persists nothing. weft's sessions ask for batched frames (`?batch=1`: frames written
# together share a WebSocket frame, a line each), which Centrifugo's JSON protocol always
# does. Every server listens on 127.0.0.1 only; each run is bounded in time and
# every server this script starts is stopped on exit.
#
# Each load runs WEFT_BENCH_RUNS times per server; the table gives the median of each
# figure, missing/duplicates/errors summed, and the ratios weft / Centrifugo. Server CPU is
# read from /proc over the measured window only: the nodes' (`node CPU-s`), and apart the
# services they use (Redis, Cassandra).
#
# Environment (all optional):
#   WEFT_BENCH_RUNS (3)                  runs of each load, per server
#   WEFT_BENCH_DURATION (15)             measured seconds of each run, after a warm-up of
#   WEFT_BENCH_WARMUP (2)                seconds
#   WEFT_BENCH_MEMBERS (1000)            members of the chat / subscribers of the channel
#   WEFT_BENCH_SENDERS (10)              sender sockets of the multi-sender loads
#   WEFT_BENCH_BODY_BYTES (20)           message body size
#   WEFT_BENCH_RATE (200)                msg/s of the one-node latency row
#   WEFT_BENCH_ONE_SENDER_RATES (200 400)
#   WEFT_BENCH_STEPS (200 300 400 600 800 1000 1200)   offered msg/s of the max-rate search
#                                        (steps at most 1.25× apart: the ratio sought is 1.2×)
#   WEFT_BENCH_MAX_P99_MS (250)
#   WEFT_BENCH_SENDER_RATES (1000 2000 0), WEFT_BENCH_SENDER_MEMBERS (2), WEFT_BENCH_SENDER_WINDOW (128)
#   WEFT_BENCH_CLUSTER_RATES (100 200)
#   WEFT_BENCH_IDLE_CONNECTIONS (10000), WEFT_BENCH_IDLE_HOLD (10 s)
#   WEFT_BENCH_SETTLE_BUSY (5), WEFT_BENCH_SETTLE_MAX (60)   before each run, wait (60 s at
#                                        most) until the machine is at most 5 % busy for 2 s
#   WEFT_BENCH_PORT (18080)              weft's port (one node)
#   WEFT_BENCH_CENTRIFUGO_PORT (18000)   Centrifugo's port (three nodes: it and the next two)
#   WEFT_BIN, WEFT_LOAD_BIN              use these binaries instead of building release ones
#   WEFT_BENCH_OUT                       keep each run's JSON and the server logs here
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUNS=${WEFT_BENCH_RUNS:-3}
DURATION=${WEFT_BENCH_DURATION:-15}
WARMUP=${WEFT_BENCH_WARMUP:-2}
MEMBERS=${WEFT_BENCH_MEMBERS:-1000}
SENDERS=${WEFT_BENCH_SENDERS:-10}
BODY=${WEFT_BENCH_BODY_BYTES:-20}
RATE=${WEFT_BENCH_RATE:-200}
ONE_SENDER_RATES=${WEFT_BENCH_ONE_SENDER_RATES:-200 400}
STEPS=${WEFT_BENCH_STEPS:-200 300 400 600 800 1000 1200}
MAX_P99=${WEFT_BENCH_MAX_P99_MS:-250}
CLUSTER_RATES=${WEFT_BENCH_CLUSTER_RATES:-100 200}
SENDER_RATES=${WEFT_BENCH_SENDER_RATES:-1000 2000 0}
SENDER_MEMBERS=${WEFT_BENCH_SENDER_MEMBERS:-2}
SENDER_WINDOW=${WEFT_BENCH_SENDER_WINDOW:-128}
IDLE=${WEFT_BENCH_IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${WEFT_BENCH_IDLE_HOLD:-10}
SETTLE_BUSY=${WEFT_BENCH_SETTLE_BUSY:-5}
SETTLE_MAX=${WEFT_BENCH_SETTLE_MAX:-60}
PORT=${WEFT_BENCH_PORT:-18080}
CPORT=${WEFT_BENCH_CENTRIFUGO_PORT:-18000}
CENTRIFUGO_VERSION=6.9.1
CACHE=${WEFT_SERVICES_DIR:-$HOME/.cache/weft-services}/centrifugo-$CENTRIFUGO_VERSION
CENTRIFUGO=$CACHE/bin/centrifugo
SECRET=weft-bench-centrifugo-secret
MODES=${1:-all}
case $MODES in
all) MODES="one three" ;;
one | three) ;;
*)
    echo "usage: $0 [one|three|all]" >&2
    exit 2
    ;;
esac

log() { printf '[centrifugo-bench] %s\n' "$*" >&2; }

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-centrifugo.XXXXXX")
OUT=${WEFT_BENCH_OUT:-$WORK/out}
mkdir -p "$OUT"
STARTED_FILE=$WORK/services-started
PIDS=()         # the server processes this script started (weft one node, Centrifugo)
CLUSTER_UP=

stop_servers() {
    if [ -n "$CLUSTER_UP" ]; then
        WEFT_BIN=$WEFT timeout 120 bash scripts/cluster.sh down >/dev/null 2>&1 || true
        CLUSTER_UP=
    fi
    local pid _
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "server (pid $pid) still running after 15 s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    local rc=$?
    stop_servers
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

# wait_ready URL PID NAME LOG: polls URL until it answers (60 s at most).
wait_ready() {
    local url=$1 pid=$2 name=$3 logfile=$4 _
    for _ in $(seq 1 300); do
        curl -sf "$url" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 30 "$logfile" >&2
    log "$name did not become ready within 60 s"
    exit 1
}

# --- binaries -------------------------------------------------------------------------

if [ ! -x "$CENTRIFUGO" ]; then
    command -v go >/dev/null || {
        log "Go is needed to build Centrifugo (go install)"
        exit 1
    }
    log "building Centrifugo v$CENTRIFUGO_VERSION with $(go version) into $CACHE (once)"
    mkdir -p "$CACHE"
    GOPATH=$CACHE/gopath GOBIN=$CACHE/bin GOCACHE=$CACHE/go-build GOFLAGS=-modcacherw \
        timeout 1800 go install "github.com/centrifugal/centrifugo/v6@v$CENTRIFUGO_VERSION" >&2
fi
"$CENTRIFUGO" version >&2

if [ -n "${WEFT_BIN:-}" ] && [ -n "${WEFT_LOAD_BIN:-}" ]; then
    WEFT=$WEFT_BIN
    LOAD=$WEFT_LOAD_BIN
else
    log "building weft and weft-load (release)"
    timeout 1800 cargo build --release --workspace --bin weft --bin weft-load >&2
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    WEFT=${WEFT_BIN:-$TARGET/release/weft}
    LOAD=${WEFT_LOAD_BIN:-$TARGET/release/weft-load}
fi

# --- servers --------------------------------------------------------------------------

# Sets URL (REST / first node), SPREAD (every node, comma-separated), NODES and SERVICES
# (pids, comma-separated) and EXTRA (weft-load arguments naming the server).

start_weft_one() {
    port_open "$PORT" && {
        log "127.0.0.1:$PORT is taken; set WEFT_BENCH_PORT"
        exit 1
    }
    rm -rf "$WORK/data"
    mkdir -p "$WORK/data"
    env WEFT_SERVER_LISTEN="127.0.0.1:$PORT" WEFT_STORE_DATA_DIR="$WORK/data" \
        WEFT_SERVER_SHUTDOWN_GRACE_MS=5000 \
        WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 WEFT_GATEWAY_SEND_BURST=1000000 \
        WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 WEFT_GATEWAY_FRAME_BURST=1000000 \
        WEFT_LOG_LEVEL=warn WEFT_LOG_FORMAT=json \
        "$WEFT" serve >"$OUT/weft-one.log" 2>&1 &
    PIDS+=($!)
    wait_ready "http://127.0.0.1:$PORT/readyz" $! "weft" "$OUT/weft-one.log"
    URL=http://127.0.0.1:$PORT
    SPREAD=$URL
    NODES=$!
    SERVICES=
    EXTRA=(--url "$URL" --batch)
    log "weft (embedded) ready on $URL (pid $NODES)"
}

start_weft_three() {
    WEFT_SERVICES_STARTED_FILE=$STARTED_FILE timeout 600 bash scripts/services.sh up >&2
    WEFT_BIN=$WEFT bash scripts/cluster.sh down >/dev/null 2>&1 || true
    WEFT_BIN=$WEFT WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 WEFT_GATEWAY_SEND_BURST=1000000 \
        WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 WEFT_GATEWAY_FRAME_BURST=1000000 \
        timeout 300 bash scripts/cluster.sh up >"$OUT/weft-cluster-up.log" 2>&1 || {
        tail -n 30 "$OUT/weft-cluster-up.log" >&2
        exit 1
    }
    CLUSTER_UP=1
    URL=http://127.0.0.1:8081
    SPREAD=http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083
    NODES=$(cat .cluster/node-1.pid),$(cat .cluster/node-2.pid),$(cat .cluster/node-3.pid)
    SERVICES=$(service_pids redis cassandra)
    EXTRA=(--url "$URL" --admin-key local-admin-key --spread "$SPREAD" --batch)
    log "weft cluster ready on 127.0.0.1:8081-8083 (pids $NODES; services $SERVICES)"
}

# service_pids NAME...: pids of scripts/services.sh's services, comma-separated.
service_pids() {
    local state=${WEFT_STATE_DIR:-${WEFT_SERVICES_DIR:-$HOME/.cache/weft-services}/state} name pids=''
    for name in "$@"; do
        pids+=${pids:+,}$(cat "$state/$name/$name.pid")
    done
    printf '%s' "$pids"
}

# centrifugo_config FILE PORT ENGINE: a Centrifugo config on 127.0.0.1:PORT.
centrifugo_config() {
    local engine
    if [ "$3" = redis ]; then
        eval "$(bash scripts/services.sh env)"
        engine="{\"type\": \"redis\", \"redis\": {\"address\": \"${WEFT_TEST_REDIS_URL:-redis://127.0.0.1:6379}\", \"prefix\": \"weft_bench_centrifugo\"}}"
    else
        engine='{"type": "memory"}'
    fi
    cat >"$1" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": $2},
  "log": {"level": "warn"},
  "engine": $engine,
  "client": {
    "token": {"hmac_secret_key": "$SECRET"},
    "queue_max_size": 16777216
  },
  "channel": {
    "without_namespace": {
      "allow_subscribe_for_client": true,
      "allow_publish_for_client": true
    }
  },
  "http_api": {"key": "weft-bench-api-key"},
  "prometheus": {"enabled": true},
  "health": {"enabled": true},
  "usage_stats": {"disabled": true}
}
JSON
}

# start_centrifugo N ENGINE: N Centrifugo nodes on CPORT.. with ENGINE (memory or redis).
start_centrifugo() {
    local n=$1 engine=$2 i port pids='' urls=''
    [ "$engine" = redis ] &&
        WEFT_SERVICES_STARTED_FILE=$STARTED_FILE timeout 600 bash scripts/services.sh up redis >&2
    for i in $(seq 0 $((n - 1))); do
        port=$((CPORT + i))
        port_open "$port" && {
            log "127.0.0.1:$port is taken; set WEFT_BENCH_CENTRIFUGO_PORT"
            exit 1
        }
        centrifugo_config "$WORK/centrifugo-$i.json" "$port" "$engine"
        "$CENTRIFUGO" --config "$WORK/centrifugo-$i.json" >"$OUT/centrifugo-$n-$i.log" 2>&1 &
        PIDS+=($!)
        wait_ready "http://127.0.0.1:$port/health" $! "centrifugo node $i" "$OUT/centrifugo-$n-$i.log"
        pids+=${pids:+,}$!
        urls+=${urls:+,}http://127.0.0.1:$port
    done
    URL=http://127.0.0.1:$CPORT
    SPREAD=$urls
    NODES=$pids
    SERVICES=
    [ "$engine" = redis ] && SERVICES=$(service_pids redis)
    EXTRA=(--url "$URL" --target centrifugo --hmac-secret "$SECRET")
    [ "$n" -gt 1 ] && EXTRA+=(--spread "$SPREAD")
    log "Centrifugo ($engine engine) ready on $SPREAD (pids $NODES)"
}

# --- runs -----------------------------------------------------------------------------

# busy_ticks: the machine's busy and total CPU ticks so far (/proc/stat).
busy_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + irq + softirq + steal + idle + iowait))"
}

# settle: waits (SETTLE_MAX s at most) until the whole machine has been at most SETTLE_BUSY %
# busy for two seconds in a row, so that no run starts while the previous one's aftermath
# (sockets closing, presence going out, a store flushing) still runs: on 2 cores that
# would fall on whichever server runs next.
settle() {
    local quiet=0 waited=0 a b busy
    while [ "$quiet" -lt 2 ] && [ "$waited" -lt "$SETTLE_MAX" ]; do
        read -r -a a <<<"$(busy_ticks)"
        sleep 1
        read -r -a b <<<"$(busy_ticks)"
        busy=$((100 * (b[0] - a[0]) / (b[1] - a[1] > 0 ? b[1] - a[1] : 1)))
        if [ "$busy" -le "$SETTLE_BUSY" ]; then quiet=$((quiet + 1)); else quiet=0; fi
        waited=$((waited + 1))
    done
    [ "$quiet" -ge 2 ] || log "the machine was still busy after ${SETTLE_MAX} s (last second ${busy} %); running anyway"
}

# fanout FILE ARGS...: one fan-out run against the current server, its JSON in FILE.
fanout() {
    local file=$1
    shift
    settle
    local watch=(--server-pid "$NODES")
    [ -n "$SERVICES" ] && watch+=(--service-pid "$SERVICES")
    timeout $((2 * (WARMUP + DURATION) + 240)) "$LOAD" fanout "$@" "${EXTRA[@]}" "${watch[@]}" \
        --members "${RUN_MEMBERS:-$MEMBERS}" --body-bytes "$BODY" --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
        --channel "bench-$RANDOM" --out "$file" >&2
}

# repeat NAME ARGS...: RUNS fan-out runs of one load; their files in $OUT/SERVER-NAME-RUN.json.
repeat() {
    local name=$1 run
    shift
    for run in $(seq 1 "$RUNS"); do
        log "$SERVER: $name (run $run of $RUNS)"
        fanout "$OUT/$SERVER-$name-$run.json" "$@" || log "$SERVER: $name run $run failed"
    done
}

files() { ls "$OUT/$1-$2-"*.json 2>/dev/null; }

# start_one: one node of the current server (weft embedded, or Centrifugo's memory engine).
start_one() {
    if [ "$SERVER" = weft ]; then start_weft_one; else start_centrifugo 1 memory; fi
}

# idle_runs: RUNS idle runs (memory per held connection), each on a freshly started
# server: a second run on the same process reuses what the first one's connections freed
# (the allocator keeps it), and would measure close to nothing.
idle_runs() {
    local run target=()
    [ "$SERVER" = centrifugo ] && target=(--target centrifugo --hmac-secret "$SECRET")
    for run in $(seq 1 "$RUNS"); do
        start_one
        log "$SERVER: idle, $IDLE connections (run $run of $RUNS)"
        timeout $((IDLE_HOLD + 300)) "$LOAD" idle --url "$URL" --connections "$IDLE" \
            --hold-secs "$IDLE_HOLD" "${target[@]}" --out "$OUT/$SERVER-idle-$run.json" >&2 ||
            log "$SERVER: idle run $run failed"
        stop_servers
    done
}

# search: the step-up of offered rates; BEST_<server> is the highest step sustained.
search() {
    local step best=
    for step in $STEPS; do
        repeat "step$step" --senders "$SENDERS" --rate "$step"
        # shellcheck disable=SC2046 # one file a word
        if "$LOAD" sustained --max-p99-ms "$MAX_P99" $(files "$SERVER" "step$step"); then
            best=$step
        else
            break
        fi
    done
    printf -v "BEST_$SERVER" '%s' "$best"
}

# versus NAME LABEL: the side-by-side rows of one load.
versus() {
    local w c
    w=$(files weft "$1") c=$(files centrifugo "$1")
    if [ -z "$w" ] || [ -z "$c" ]; then
        echo "| $2 | (no runs) | | | | | | | | | | | |"
        return
    fi
    # shellcheck disable=SC2086 # one file a word
    "$LOAD" versus --load "$2" --weft $w --centrifugo $c
}

one_node() {
    local server
    for server in weft centrifugo; do
        SERVER=$server
        idle_runs
        start_one
        repeat "rate$RATE" --senders "$SENDERS" --rate "$RATE"
        for r in $ONE_SENDER_RATES; do
            repeat "single$r" --senders 1 --rate "$r"
        done
        for r in $SENDER_RATES; do
            RUN_MEMBERS=$SENDER_MEMBERS repeat "sender$r" --senders 1 --rate "$r" --window "$SENDER_WINDOW"
        done
        search
        stop_servers
    done
    {
        echo
        echo "### One node each (weft embedded; Centrifugo memory engine)"
        echo
        "$LOAD" header --scenario versus-idle
        versus idle "idle connections"
        echo
        "$LOAD" header --scenario versus
        versus "rate$RATE" "$MEMBERS members, $SENDERS senders, $RATE msg/s"
        for r in $ONE_SENDER_RATES; do
            versus "single$r" "$MEMBERS members, 1 sender socket, $r msg/s"
        done
        for r in $SENDER_RATES; do
            local offered="$r msg/s"
            [ "$r" = 0 ] && offered="as fast as acks come"
            versus "sender$r" "$SENDER_MEMBERS members, 1 sender socket (window $SENDER_WINDOW), $offered"
        done
        # The max-rate rows: each server at the highest step it sustained.
        local bw=${BEST_weft:-} bc=${BEST_centrifugo:-}
        local label="highest rate with p99 ≤ $MAX_P99 ms (weft ${bw:-none}, Centrifugo ${bc:-none} msg/s)"
        if [ -n "$bw" ] && [ -n "$bc" ]; then
            # shellcheck disable=SC2046
            "$LOAD" versus --load "$label" --weft $(files weft "step$bw") --centrifugo $(files centrifugo "step$bc")
        else
            echo "| $label | | | | | | | | | | | | |"
        fi
    } >>"$SUMMARY"
}

# keep_server NAME: saves where the current server is (URL, SPREAD, NODES, SERVICES,
# EXTRA) under NAME; use_server NAME makes NAME's the current server again.
keep_server() {
    declare -g "URL_$1=$URL" "SPREAD_$1=$SPREAD" "NODES_$1=$NODES" "SERVICES_$1=$SERVICES"
    declare -ga "EXTRA_$1"
    local -n kept="EXTRA_$1"
    kept=("${EXTRA[@]}")
}

use_server() {
    local url="URL_$1" spread="SPREAD_$1" nodes="NODES_$1" services="SERVICES_$1"
    local -n kept="EXTRA_$1"
    SERVER=$1 URL=${!url} SPREAD=${!spread} NODES=${!nodes} SERVICES=${!services}
    EXTRA=("${kept[@]}")
}

three_nodes() {
    local server r run
    SERVER=weft
    start_weft_three
    keep_server weft
    SERVER=centrifugo
    start_centrifugo 3 redis
    keep_server centrifugo
    for r in $CLUSTER_RATES; do
        for run in $(seq 1 "$RUNS"); do
            for server in weft centrifugo; do
                use_server "$server"
                log "$SERVER: three$r (run $run of $RUNS)"
                fanout "$OUT/$SERVER-three$r-$run.json" --senders "$SENDERS" --rate "$r" ||
                    log "$SERVER: three$r run $run failed"
            done
        done
    done
    stop_servers
    {
        echo
        echo "### Three nodes each (weft: Redis + Cassandra; Centrifugo: Redis engine), sockets spread"
        echo
        "$LOAD" header --scenario versus
        for r in $CLUSTER_RATES; do
            versus "three$r" "$MEMBERS members, $SENDERS senders, $r msg/s"
        done
    } >>"$SUMMARY"
}

SUMMARY=$OUT/summary.md
: >"$SUMMARY"
for mode in $MODES; do
    case $mode in
    one) one_node ;;
    three) three_nodes ;;
    esac
done

echo "weft vs Centrifugo v$CENTRIFUGO_VERSION: medians of $RUNS runs, ${DURATION} s measured after ${WARMUP} s of warm-up,"
echo "${BODY}-byte bodies; missing, duplicates and errors summed over the runs; ratios weft / Centrifugo."
cat "$SUMMARY"
