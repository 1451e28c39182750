#!/usr/bin/env bash
# Build first: cargo build --release -p weft -p weft-loadtest. Then: bash loadtest/first-run.sh
# First runs only: every run starts a node on an empty data directory, sends one load run
# at it and stops it, so a stall that only a new store shows (files growing) is seen in
# every run rather than once in a set. VARIANTS are alternated, RUNS rounds of them; a
# variant is `name=binary` (a weft binary) and may add env with `name=binary:K=V,K=V`.
#   VARIANTS="old=/tmp/weft-old new=target/release/weft" RUNS=6 bash loadtest/first-run.sh
# SCENARIO defaults to a dm load with a webhook for every message and push configured; a
# variant with the env OFF=1 runs it without either (`off=target/release/weft:OFF=1`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
L=${WEFT_LOAD_BIN:-$ROOT/target/release/weft-load}
VARIANTS=${VARIANTS:-current=$ROOT/target/release/weft}
RUNS=${RUNS:-4}
SCENARIO=${SCENARIO:-dm --pairs 1000 --rate 5000 --webhook}
OUT=${OUT:-/tmp/first-run}; rm -rf "$OUT"; mkdir -p "$OUT"
PORT=18591
VAPID=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
NODE=
trap '[ -n "$NODE" ] && kill $NODE 2>/dev/null; wait 2>/dev/null' EXIT
for r in $(seq "$RUNS"); do
  for v in $VARIANTS; do
    name=${v%%=*}; spec=${v#*=}; bin=${spec%%:*}; extra=()
    [ "$spec" != "$bin" ] && IFS=, read -r -a extra <<< "${spec#*:}"
    data=${DATA_ROOT:-$OUT}/data-$name-$r; rm -rf "$data"; mkdir -p "$data"
    scenario=$SCENARIO; push=(WEFT_PUSH_VAPID_PRIVATE_KEY="$VAPID" WEFT_PUSH_VAPID_SUBJECT=mailto:ops@example.com)
    if [[ " ${extra[*]} " == *" OFF=1 "* ]]; then scenario=${SCENARIO/ --webhook/}; push=(); fi
    env WEFT_SERVER_LISTEN=127.0.0.1:$PORT WEFT_GATEWAY_SEND_RATE_PER_SEC=1000000 WEFT_GATEWAY_SEND_BURST=1000000 \
      WEFT_GATEWAY_FRAME_RATE_PER_SEC=1000000 WEFT_GATEWAY_FRAME_BURST=1000000 WEFT_WEBHOOKS_ALLOW_HTTP=true \
      WEFT_WEBHOOKS_ALLOW_PRIVATE=true WEFT_LOG_LEVEL=warn WEFT_STORE_DATA_DIR="$data" \
      "${push[@]}" "${extra[@]}" \
      "$bin" serve > "$OUT/node-$name-$r.log" 2>&1 &
    NODE=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
    # shellcheck disable=SC2086 # the scenario is a list of words
    if timeout 180 "$L" $scenario --url http://127.0.0.1:$PORT --server-pid $NODE \
      --duration-secs 10 --warmup-secs 2 --out "$OUT/$name-$r.json" > "$OUT/$name-$r.md" 2>>"$OUT/load.log"; then
      echo "$name $r $(tail -1 "$OUT/$name-$r.md")"
    else
      echo "$name $r FAILED (see $OUT/load.log)"
    fi
    kill $NODE; wait $NODE 2>/dev/null || true; NODE=
    sync
  done
done
