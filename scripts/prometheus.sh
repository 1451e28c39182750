#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) scraping the 3-node cluster of
# scripts/cluster.sh, on loopback only:
#
#   bash scripts/cluster.sh up         # the 3 nodes on 127.0.0.1:8081-8083
#   bash scripts/prometheus.sh up      # install if missing, write the config, start, wait until ready
#   bash scripts/prometheus.sh check   # wait until all 3 targets are up, print a summary (exit 1 if not)
#   bash scripts/prometheus.sh status  # is it running, and where
#   bash scripts/prometheus.sh down    # stop the Prometheus that `up` started (by pid file)
#
# Prometheus scrapes GET /metrics on each node every 2 s (job `weft`; each target labelled
# namespace=weft-local, pod=node-N as the chart's ServiceMonitor would, so the Grafana
# dashboard helm/weft/dashboards/weft.json works on it) with `Authorization: Bearer <token>`: WEFT_METRICS_TOKEN if set (give the nodes the
# same one: `WEFT_METRICS_TOKEN=... bash scripts/cluster.sh up`), else the admin key
# (WEFT_ADMIN_KEY, default local-admin-key), which the nodes also accept on /metrics.
#
# Environment (all optional):
#   WEFT_PROMETHEUS_PORT (9090: the UI and API on 127.0.0.1), WEFT_PROMETHEUS_TARGETS
#   (127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083), WEFT_PROMETHEUS_START_TIMEOUT (60 s),
#   WEFT_PROMETHEUS_CHECK_TIMEOUT (60 s), WEFT_PROMETHEUS_KEEP_DATA (0: a freshly started
#   Prometheus gets an empty data dir), WEFT_STATE_DIR (~/.cache/weft-services/state:
#   config, data, log and pid file go to <state>/prometheus/).
set -euo pipefail

PORT=${WEFT_PROMETHEUS_PORT:-9090}
TARGETS=${WEFT_PROMETHEUS_TARGETS:-127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083}
START_TIMEOUT=${WEFT_PROMETHEUS_START_TIMEOUT:-60}
CHECK_TIMEOUT=${WEFT_PROMETHEUS_CHECK_TIMEOUT:-60}
KEEP_DATA=${WEFT_PROMETHEUS_KEEP_DATA:-0}
TOKEN=${WEFT_METRICS_TOKEN:-${WEFT_ADMIN_KEY:-local-admin-key}}
STATE_DIR=${WEFT_STATE_DIR:-$HOME/.cache/weft-services/state}
DIR=$STATE_DIR/prometheus
CONFIG=$DIR/prometheus.yml
DATA=$DIR/data
PIDFILE=$DIR/prometheus.pid
LOG=$DIR/prometheus.log
URL="http://127.0.0.1:$PORT"

log() { printf '[prometheus] %s\n' "$*" >&2; }

die() {
    log "ERROR: $*"
    exit 1
}

# die_log MESSAGE: print the tail of Prometheus's log, then fail with MESSAGE.
die_log() {
    if [ -f "$LOG" ]; then
        log "---- last 40 lines of $LOG ----"
        tail -n 40 "$LOG" >&2 || true
        log "---- end of $LOG ----"
    fi
    die "$*"
}

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && SUDO=sudo
fi

# Targets as an array; each must be a loopback host:port.
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
    [[ $t =~ ^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost):[0-9]+$ ]] ||
        die "target '$t' is not a loopback host:port (WEFT_PROMETHEUS_TARGETS)"
done
EXPECTED=${#TARGET_LIST[@]}
[[ $PORT =~ ^[0-9]+$ ]] || die "WEFT_PROMETHEUS_PORT must be a port number, not '$PORT'"

# apt_install PKG... (scripts/lib/apt.sh): keeps the package's own daemon from starting;
# this script starts Prometheus itself, on loopback.
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

prometheus_bin() {
    command -v prometheus 2>/dev/null || { [ -x /usr/bin/prometheus ] && echo /usr/bin/prometheus; } || true
}

ensure_tools() {
    local pkgs=()
    [ -n "$(prometheus_bin)" ] || pkgs+=(prometheus)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v jq >/dev/null 2>&1 || pkgs+=(jq ca-certificates)
    if [ ${#pkgs[@]} -gt 0 ]; then
        apt_install "${pkgs[@]}"
    fi
    PROM=$(prometheus_bin)
    [ -n "$PROM" ] || die "prometheus still missing after apt-get install prometheus"
}

# running: the pid in the pid file is alive and is a prometheus.
running() {
    local pid cmd
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *prometheus* && $cmd == *"$CONFIG"* ]]
}

port_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

write_config() {
    local t i=0 tmp quoted=${TOKEN//\'/\'\'} # YAML single quotes: ' is written ''
    mkdir -p "$DIR" "$DATA"
    tmp=$(mktemp "$DIR/.prometheus.yml.XXXXXX")
    chmod 600 "$tmp" # it holds the bearer token
    {
        cat <<YAML
# Written by scripts/prometheus.sh: Prometheus scraping the weft nodes of scripts/cluster.sh.
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
  external_labels:
    cluster: weft-local

scrape_configs:
  - job_name: weft
    metrics_path: /metrics
    scheme: http
    authorization:
      type: Bearer
      credentials: '$quoted'
    static_configs:
YAML
        for t in "${TARGET_LIST[@]}"; do
            i=$((i + 1))
            printf "      - targets: ['%s']\n        labels:\n          namespace: weft-local\n          pod: node-%d\n" "$t" "$i"
        done
    } >"$tmp"
    mv -f "$tmp" "$CONFIG"
    if [ -x "$PROM" ] && command -v promtool >/dev/null 2>&1; then
        promtool check config "$CONFIG" >/dev/null 2>&1 || {
            promtool check config "$CONFIG" >&2 || true
            die "promtool rejects $CONFIG"
        }
    fi
}

wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        if curl -fsS -m 2 "$URL/-/ready" >/dev/null 2>&1; then
            return 0
        fi
        running || die_log "prometheus exited while starting"
        sleep 0.5
    done
    die_log "prometheus not ready at $URL/-/ready after ${START_TIMEOUT}s"
}

up() {
    ensure_tools
    log "$("$PROM" --version 2>&1 | head -n 1)"
    write_config
    log "config $CONFIG: job weft, targets ${TARGETS}, every 2s"
    if running; then
        log "already running (pid $(cat "$PIDFILE")); reloading the config"
        curl -fsS -m 5 -X POST "$URL/-/reload" >/dev/null || die_log "reload failed"
    else
        rm -f "$PIDFILE"
        if port_open "$PORT"; then
            die "127.0.0.1:$PORT is taken by something else (not our pid file); set WEFT_PROMETHEUS_PORT"
        fi
        if [ "$KEEP_DATA" != 1 ] && [ -d "$DATA" ]; then
            # Old series of a previous cluster would linger in queries for 5 minutes.
            rm -rf "$DATA"
            mkdir -p "$DATA"
        fi
        log "starting on $URL (data $DATA, log $LOG)"
        nohup "$PROM" \
            --config.file="$CONFIG" \
            --storage.tsdb.path="$DATA" \
            --storage.tsdb.retention.time=1d \
            --web.listen-address="127.0.0.1:$PORT" \
            --web.enable-lifecycle \
            >"$LOG" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
    fi
    wait_ready
    log "ready: $URL (pid $(cat "$PIDFILE"))"
}

# by_pod PROMQL: "node-1=3 node-2=3 node-3=3" from a vector with a `pod` label ("-" if empty).
by_pod() {
    local out
    out=$(curl -fsS -m 5 -G "$URL/api/v1/query" --data-urlencode "query=$1" |
        jq -r '[.data.result[] | "\(.metric.pod // .metric.instance)=\(.value[1])"] | sort | join(" ")')
    echo "${out:--}"
}

# scalar PROMQL: the value of a one-sample result ("" if none).
scalar() {
    curl -fsS -m 5 -G "$URL/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // ""'
}

check() {
    command -v jq >/dev/null 2>&1 || die "jq missing: run 'bash scripts/prometheus.sh up' first"
    running || die "not running: bash scripts/prometheus.sh up"
    curl -fsS -m 5 "$URL/-/ready" >/dev/null 2>&1 || die "not ready at $URL"
    local deadline=$((SECONDS + CHECK_TIMEOUT)) targets up_count members_min t0=$SECONDS
    log "waiting up to ${CHECK_TIMEOUT}s for $EXPECTED targets up and every node seeing $EXPECTED members"
    while :; do
        targets=$(curl -fsS -m 5 "$URL/api/v1/targets?state=active" 2>/dev/null || echo '{}')
        up_count=$(scalar "count(up{job=\"weft\"} == 1) or vector(0)" 2>/dev/null || true)
        members_min=$(scalar "min(weft_cluster_members{job=\"weft\"})" 2>/dev/null || true)
        if [ "$(jq '[.data.activeTargets[]? | select(.labels.job == "weft" and .health == "up")] | length' <<<"$targets")" = "$EXPECTED" ] &&
            [ "$up_count" = "$EXPECTED" ] && [ "$members_min" = "$EXPECTED" ]; then
            break
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "targets as Prometheus sees them:"
            jq -r '.data.activeTargets[]? | "  \(.labels.pod // "-") \(.scrapeUrl) \(.health) \(.lastError)"' <<<"$targets" >&2 || true
            die "after ${CHECK_TIMEOUT}s: count(up{job=\"weft\"} == 1) = '${up_count}', min(weft_cluster_members) = '${members_min}' (want $EXPECTED)"
        fi
        sleep 1
    done
    echo "OK: Prometheus $URL sees $EXPECTED/$EXPECTED weft targets up (waited $((SECONDS - t0))s)"
    echo "targets:"
    jq -r '.data.activeTargets[] | select(.labels.job == "weft")
        | "  \(.labels.pod) \(.scrapeUrl) health=\(.health) last_scrape=\(.lastScrapeDuration * 1000 | floor)ms"' <<<"$targets" | sort
    echo "per node (pod label):"
    local m
    for m in weft_cluster_members weft_connections weft_sessions_opened_total \
        weft_messages_persisted_total weft_http_requests_total weft_quic_frames_sent_total \
        weft_delivery_seconds_count; do
        printf '  %-36s %s\n' "$m" "$(by_pod "sum by (pod) ($m{job=\"weft\"})")"
    done
    echo "queries:"
    local q v
    for q in \
        'count(up{job="weft"} == 1)' \
        'min(weft_cluster_members)' \
        'sum(weft_connections)' \
        'sum(weft_messages_persisted_total)' \
        'histogram_quantile(0.99, sum by (le) (weft_delivery_seconds_bucket))' \
        'count(count by (__name__) ({job="weft",__name__=~"weft_.*"}))'; do
        v=$(scalar "$q")
        printf '  %-72s %s\n' "$q" "${v:-(no data)}"
    done
}

status() {
    if running; then
        echo "prometheus running (pid $(cat "$PIDFILE")) on $URL, config $CONFIG"
    else
        echo "prometheus not running (pid file $PIDFILE)"
        return 1
    fi
}

down() {
    if ! running; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    local pid
    pid=$(cat "$PIDFILE")
    log "stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after 30s; SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    log "stopped"
}

case "${1:-}" in
up) up ;;
check) check ;;
status) status ;;
down) down ;;
*)
    echo "usage: $0 up|check|status|down" >&2
    exit 64
    ;;
esac
