#!/usr/bin/env bash
# The TypeScript client's checks (clients/js): bash scripts/test-js.sh
#
# 1. npm ci of the pinned dev dependencies (TypeScript only), skipped while
#    node_modules was installed from the same package-lock.json;
# 2. builds with tsc into a scratch directory and fails if the committed dist/
#    differs from it (the node embeds dist/index.js, so cargo never needs npm),
#    and type-checks test/typecheck.ts against the published .d.ts;
# 3. runs the tests (Node's test runner) against live weft nodes they start:
#    one node on the embedded store, and three on Redis + Cassandra, so the
#    services must run (scripts/services.sh up; scripts/test.sh does it and
#    exports WEFT_TEST_REDIS_URL / WEFT_TEST_CQL_NODES). The weft binary is
#    WEFT_BIN, or target/debug/weft (built with cargo when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT/clients/js"

command -v node >/dev/null || { echo "test-js: node (20 or later) is needed" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "test-js: node $(node --version) is too old, 20 or later is needed" >&2; exit 1; }

if [ -z "${WEFT_TEST_REDIS_URL:-}" ] || [ -z "${WEFT_TEST_CQL_NODES:-}" ]; then
    eval "$(bash "$ROOT/scripts/services.sh" env)"
fi

# 1. Dependencies, once per lockfile.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.weft-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ] || [ ! -x node_modules/.bin/tsc ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_hash" >"$stamp"
fi

# 2. The committed dist/ is what the source builds to.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
node_modules/.bin/tsc -p tsconfig.json --outDir "$scratch"
if ! diff -r "$scratch" dist >"$scratch.diff" 2>&1; then
    head -40 "$scratch.diff" >&2
    rm -f "$scratch.diff"
    echo "test-js: clients/js/dist is stale: run 'npm run build' in clients/js and commit dist/" >&2
    exit 1
fi
rm -f "$scratch.diff"
# The published types serve an app as documented (test/typecheck.ts, compiled, never run).
node_modules/.bin/tsc -p test/tsconfig.json

# 3. The tests, one file at a time (each starts its own nodes; 2 cores).
flags=()
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null || flags+=(--experimental-websocket)
node "${flags[@]}" --test --test-concurrency=1 --test-timeout=180000 test/*.test.mjs
