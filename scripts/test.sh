#!/usr/bin/env bash
# The project's test command: bash scripts/test.sh [extra args for cargo test]
#
# Starts (or reuses) the real Redis, Cassandra, OpenSearch, SeaweedFS (S3) and Mailpit (SMTP) the
# tests need (scripts/services.sh up), exports WEFT_TEST_REDIS_URL / WEFT_TEST_REDIS_CLUSTER_NODES /
# WEFT_TEST_CQL_NODES / WEFT_TEST_OPENSEARCH_URL / WEFT_TEST_S3_* / WEFT_TEST_SMTP_URL /
# WEFT_TEST_MAILPIT_URL, then runs
# fmt, clippy, the Helm chart checks (scripts/helm-check.sh), the tests, and a smoke run of
# every load scenario (loadtest/smoke.sh).
# With CI=true the services this run started itself are stopped on exit; otherwise they are
# left running so the next run starts in well under a second (stop them: scripts/services.sh down).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi

if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
    WEFT_SERVICES_STARTED_FILE=$(mktemp)
    export WEFT_SERVICES_STARTED_FILE
    stop_started_services() {
        local rc=$?
        # A failed run shows what the services said before they are stopped.
        [ "$rc" = 0 ] || bash scripts/services.sh logs || true
        if [ -s "$WEFT_SERVICES_STARTED_FILE" ]; then
            # shellcheck disable=SC2046 # one word per service name
            bash scripts/services.sh down $(sort -u "$WEFT_SERVICES_STARTED_FILE") || true
        fi
        rm -f "$WEFT_SERVICES_STARTED_FILE"
        exit "$rc"
    }
    trap stop_started_services EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # A CI run builds once: incremental state would only take disk (gigabytes of it).
    export CARGO_INCREMENTAL=0
fi

bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"
# The fault tests (tests/faults.rs) step a node's wall clock with libfaketime.
if ! dpkg -s libfaketime >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime
fi
# The loss scenario (tests/faults.rs) drops packets on peer links with nftables.
if ! command -v nft >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables
fi
echo "WEFT_TEST_REDIS_URL=$WEFT_TEST_REDIS_URL WEFT_TEST_REDIS_CLUSTER_NODES=$WEFT_TEST_REDIS_CLUSTER_NODES WEFT_TEST_CQL_NODES=$WEFT_TEST_CQL_NODES WEFT_TEST_OPENSEARCH_URL=$WEFT_TEST_OPENSEARCH_URL WEFT_TEST_SMTP_URL=$WEFT_TEST_SMTP_URL WEFT_TEST_MAILPIT_URL=$WEFT_TEST_MAILPIT_URL"

cargo fmt --all -- --check
# No import cycle between the crate's top-level modules (docs/design.md, "Layers").
python3 scripts/check-layers.py
cargo clippy --workspace --all-targets -- -D warnings
# The Helm chart and the Grafana dashboard: lint, render, validate offline (builds helm
# and installs the Kubernetes schemas once, under ~/.cache/weft-tools).
bash scripts/helm-check.sh
# Examples are benchmarks: clippy builds them above; running them here would only
# print empty test summaries.
log=$(mktemp)
cargo test --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
bash scripts/openapi-check.sh # the OpenAPI document: openapi-spec-validator, then Schemathesis against a live node
bash scripts/test-browser.sh # the web chat at /demo in Debian's Chromium (Playwright): two people chat, offline and back, phone, keyboard
bash scripts/test-js.sh # the TypeScript client (clients/js): npm ci, dist/ up to date, tests against live nodes
# One small run of every load scenario (fanout, dm, idle on one node; cluster and storm
# on three), failing on anything lost, duplicated or failed.
bash loadtest/smoke.sh
