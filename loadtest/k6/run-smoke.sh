#!/usr/bin/env bash
# Smoke run of weft's k6 scenarios: selftest.js (the scripts' bookkeeping, no node), then
# each of idle, fanout, dm, cluster and storm once, at a tiny size, against a running node. Fails (exit 1) if any check or threshold fails:
# a socket without welcome, an error frame, a message lost, duplicated or unexpected, a
# send never acknowledged.
#
#   WEFT_URL=http://127.0.0.1:8080 bash loadtest/k6/run-smoke.sh
#
# Environment:
#   WEFT_URL          the node (default http://127.0.0.1:8080)
#   WEFT_URLS         several nodes, comma-separated, for cluster and storm (default: WEFT_URL
#                     twice for cluster — the same node, so nothing crosses nodes — and
#                     WEFT_URL for storm); idle, fanout and dm use WEFT_URL
#   WEFT_ADMIN_KEY    the node's admin key, if it has one
#   WEFT_K6           a k6 binary to run the scripts with (default: `k6` on PATH, if any)
#   WEFT_K6_RUNNER    auto (default): WEFT_K6 or k6 on PATH, else the Node runner in compat/;
#                     k6 or node to insist on one
#   WEFT_SMOKE_ONLY   scenarios to run, space-separated (default: selftest and all five)
#   WEFT_SMOKE_ALLOW_REMOTE=1  allow node URLs that are not loopback
#
# The storm runs here with no node failing (k6 cannot kill one): it checks the clients'
# bookkeeping, not recovery. See README.md for a storm with a node killed.
#
# Sizes stay under the node's default per-user send limit (20/s, burst 40): at most 5
# messages per second per user. Every run is bounded (`timeout`), and the scripts stop by
# themselves. The last line is "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URL=${WEFT_URL:-http://127.0.0.1:8080}
URL=${URL%/}
ONLY=${WEFT_SMOKE_ONLY:-selftest idle fanout dm cluster storm}
RUNNER=${WEFT_K6_RUNNER:-auto}

log() { printf '[k6-smoke] %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 2
}

# ---------------------------------------------------------------- the node URLs

MULTI=${WEFT_URLS:-}
loopback() {
    local host
    host=$(printf '%s' "$1" | sed -E 's#^https?://##; s#/.*$##; s#:[0-9]+$##')
    case $host in
    localhost | 127.* | '[::1]') return 0 ;;
    *) return 1 ;;
    esac
}
for u in $URL ${MULTI//,/ }; do
    case $u in
    http://* | https://*) ;;
    *) die "not an http(s) URL: $u" ;;
    esac
    if ! loopback "$u" && [ "${WEFT_SMOKE_ALLOW_REMOTE:-0}" != 1 ]; then
        die "$u is not a loopback address; set WEFT_SMOKE_ALLOW_REMOTE=1 to smoke-test a remote node"
    fi
done

# ---------------------------------------------------------------- the runner

K6=${WEFT_K6:-}
if [ -z "$K6" ] && [ "$RUNNER" != node ]; then
    K6=$(command -v k6 || true)
fi
case $RUNNER in
auto) if [ -n "$K6" ]; then RUNNER=k6; else RUNNER=node; fi ;;
k6) [ -n "$K6" ] || die "WEFT_K6_RUNNER=k6 but no k6 binary (set WEFT_K6 or put k6 on PATH)" ;;
node) ;;
*) die "WEFT_K6_RUNNER is auto, k6 or node, not $RUNNER" ;;
esac

if [ "$RUNNER" = k6 ]; then
    [ -x "$K6" ] || die "$K6 is not an executable"
    log "runner: $K6 ($("$K6" version 2>/dev/null | head -n 1))"
    export K6_NO_USAGE_REPORT=true
    CMD=("$K6" run --quiet)
else
    command -v node >/dev/null || die "neither k6 nor node found: install Node 20.10+ (or k6)"
    NODE_FLAGS=()
    if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
        node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null ||
            die "node $(node --version) has no WebSocket client: use Node 22+ or 20.10+"
        NODE_FLAGS=(--experimental-websocket)
    fi
    log "runner: the Node runner in compat/ (node $(node --version)); set WEFT_K6 to use k6"
    CMD=(node "${NODE_FLAGS[@]}" "$HERE/compat/run.mjs")
fi

# ---------------------------------------------------------------- the node answers

ready=0
for _ in $(seq 1 60); do
    if curl -sf -o /dev/null --max-time 2 "$URL/healthz"; then
        ready=1
        break
    fi
    sleep 0.5
done
[ "$ready" = 1 ] || die "no node answers at $URL/healthz (set WEFT_URL)"

# ---------------------------------------------------------------- the runs

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-k6-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Every setting a run reads is set here, so values from the caller's shell do not leak in.
common=(WEFT_URL="$URL" WEFT_WARMUP=0 WEFT_DRAIN=10 WEFT_PREPARE=30 WEFT_BODY_BYTES=64 WEFT_WINDOW=8
    WEFT_CONNECT_CONCURRENCY=20 WEFT_SEND_LIMIT=20 WEFT_P95_MS= WEFT_CHECK_NODES= WEFT_EXPECT_RECONNECTS=0)
cluster_urls=$URL,$URL
storm_urls=$URL
if [ -n "$MULTI" ]; then
    case $MULTI in
    *,*) cluster_urls=$MULTI ;;
    esac
    storm_urls=$MULTI
fi

settings() {
    case $1 in
    selftest) ;;
    idle) echo "WEFT_URLS=$URL WEFT_CONNECTIONS=10 WEFT_VUS=2 WEFT_DURATION=2" ;;
    fanout) echo "WEFT_URLS=$URL WEFT_MEMBERS=6 WEFT_SENDERS=2 WEFT_RATE=10 WEFT_VUS=3 WEFT_DURATION=3" ;;
    dm) echo "WEFT_URLS=$URL WEFT_PAIRS=4 WEFT_RATE=8 WEFT_VUS=2 WEFT_DURATION=3" ;;
    cluster) echo "WEFT_URLS=$cluster_urls WEFT_MEMBERS=6 WEFT_SENDERS=2 WEFT_RATE=10 WEFT_VUS=3 WEFT_DURATION=3" ;;
    storm) echo "WEFT_URLS=$storm_urls WEFT_CLIENTS=6 WEFT_CHATS=2 WEFT_RATE=6 WEFT_VUS=2 WEFT_DURATION=4 WEFT_RECONNECT=10" ;;
    *) die "unknown scenario $1" ;;
    esac
}

passed=0
failed=0
rows=()
for scenario in $ONLY; do
    # shellcheck disable=SC2207 # settings are single words
    extra=($(settings "$scenario"))
    out=$WORK/$scenario.log
    log "$scenario: ${extra[*]:-no settings}"
    set +e
    (export "${common[@]}" "${extra[@]}" && exec timeout 300 "${CMD[@]}" "$HERE/$scenario.js") >"$out" 2>&1
    rc=$?
    set -e
    # Figures of the summary (k6's and the Node runner's both print "name...: value").
    figure() { sed -nE "s/^[[:space:]]*$1[.: ]+([0-9.]+%?).*/\1/p" "$out" | head -n 1; }
    row="acked $(figure weft_acked) delivered $(figure weft_delivered) lost $(figure weft_lost) duplicates $(figure weft_duplicates) welcomed $(figure weft_ws_welcomed)"
    [ "$scenario" != selftest ] || row="(made-up frames, no node: its lost and duplicates are on purpose)"
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        rows+=("PASS  $scenario  $row")
    else
        failed=$((failed + 1))
        rows+=("FAIL  $scenario  (exit $rc)  $row")
        log "$scenario failed (exit $rc); its output:"
        cat "$out" >&2
    fi
done

echo
echo "k6 smoke against $URL ($RUNNER runner):"
for r in "${rows[@]}"; do echo "  $r"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
