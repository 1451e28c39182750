#!/usr/bin/env bash
# Build first: cargo build --release -p weft -p weft-loadtest. Then: bash loadtest/push-ab.sh
# A node with nothing configured vs a node with push (Web Push VAPID) configured and a
# webhook for every event, runs alternated. SCENARIO (default: fanout 1000 members, 10
# senders, 100 msg/s) is weft-load's scenario and arguments, e.g.
#   SCENARIO="dm --pairs 1000 --rate 5000" bash loadtest/push-ab.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${WEFT_BIN:-$ROOT/target/release/weft}; L=${WEFT_LOAD_BIN:-$ROOT/target/release/weft-load}
OUT=${OUT:-/tmp/pushab}; rm -rf $OUT; mkdir -p $OUT
start() { # port extra-env...
  local port=$1; shift
  mkdir -p $OUT/data-$port
  env WEFT_SERVER_LISTEN=127.0.0.1:$port WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 WEFT_GATEWAY_SEND_BURST=1000000 \
    WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 WEFT_GATEWAY_FRAME_BURST=1000000 WEFT_WEBHOOKS_ALLOW_HTTP=true \
    WEFT_WEBHOOKS_ALLOW_PRIVATE=true WEFT_LOG_LEVEL=warn WEFT_STORE_DATA_DIR=$OUT/data-$port "$@" \
    $W serve > $OUT/node-$port.log 2>&1 &
  echo $!
}
VAPID=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
A=$(start 18581)
B=$(start 18582 WEFT_PUSH_VAPID_PRIVATE_KEY=$VAPID WEFT_PUSH_VAPID_SUBJECT=mailto:ops@example.com)
trap 'kill $A $B 2>/dev/null; wait 2>/dev/null' EXIT
for p in 18581 18582; do for _ in $(seq 100); do curl -sf http://127.0.0.1:$p/readyz >/dev/null && break; sleep 0.2; done; done
SCENARIO=${SCENARIO:-fanout --members 1000 --senders 10 --rate 100}
for r in 1 2 3; do
  # shellcheck disable=SC2086 # the scenario is a list of words
  timeout 120 $L $SCENARIO --url http://127.0.0.1:18581 --server-pid $A \
    --duration-secs 10 --warmup-secs 2 --out $OUT/off-$r.json >> $OUT/rows.md 2>>$OUT/load.log
  tail -1 $OUT/rows.md
  # shellcheck disable=SC2086
  timeout 180 $L $SCENARIO --webhook --url http://127.0.0.1:18582 --server-pid $B \
    --duration-secs 10 --warmup-secs 2 --out $OUT/on-$r.json >> $OUT/rows.md 2>>$OUT/load.log
  tail -1 $OUT/rows.md
done
grep -i "push and email are off\|error" $OUT/node-*.log | head -5 || true
