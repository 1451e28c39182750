#!/usr/bin/env bash
# Search benchmark (issue 13): examples/search_bench.rs against each backend, medians of runs.
#
#   bash loadtest/search-bench.sh [tantivy|opensearch|all] [--url http://127.0.0.1:9200]
#
# Builds the example in release (reusing target/), runs it WEFT_BENCH_RUNS times per backend
# and prints the median of each figure as a markdown table (every run's figure in brackets),
# then the median p99 of each query kind. tantivy always runs; OpenSearch when `--url` is
# given or WEFT_TEST_OPENSEARCH_URL is set (`eval "$(bash scripts/services.sh env)"`), in
# indices of a fresh prefix per run that are deleted afterwards (also when a run fails or
# times out). tantivy indexes into a temporary directory, removed after each run.
#
# Environment (all optional):
#   WEFT_BENCH_RUNS (3)              runs per backend
#   WEFT_BENCH_MESSAGES (1000000)    messages indexed per run
#   WEFT_BENCH_QUERIES (2000)        measured queries per run (after 200 unmeasured)
#   WEFT_BENCH_BATCH (1000)          documents per index() call
#   WEFT_BENCH_RUN_TIMEOUT (1800)    seconds a run may take before it is stopped
#   WEFT_BENCH_OUT                   keep each run's JSON and log in this directory
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUNS=${WEFT_BENCH_RUNS:-3}
MESSAGES=${WEFT_BENCH_MESSAGES:-1000000}
QUERIES=${WEFT_BENCH_QUERIES:-2000}
BATCH=${WEFT_BENCH_BATCH:-1000}
RUN_TIMEOUT=${WEFT_BENCH_RUN_TIMEOUT:-1800}
URL=${WEFT_TEST_OPENSEARCH_URL:-}
BACKENDS=all
while [ $# -gt 0 ]; do
    case $1 in
    tantivy | opensearch | all) BACKENDS=$1 ;;
    --url)
        URL=${2:?--url needs a value}
        shift
        ;;
    *)
        echo "usage: $0 [tantivy|opensearch|all] [--url URL]" >&2
        exit 2
        ;;
    esac
    shift
done
case $BACKENDS in
all) BACKENDS="tantivy${URL:+ opensearch}" ;;
opensearch) [ -n "$URL" ] || {
    echo "opensearch needs --url or WEFT_TEST_OPENSEARCH_URL" >&2
    exit 2
} ;;
esac

log() { printf '[search-bench] %s\n' "$*" >&2; }

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-search-bench.XXXXXX")
OUT=${WEFT_BENCH_OUT:-$WORK/out}
mkdir -p "$OUT"
PREFIX=

# Deletes the OpenSearch indices of the current run, if any (a run that ends normally has).
drop_indices() {
    [ -n "$PREFIX" ] || return 0
    curl -sS -m 60 -o /dev/null -X DELETE \
        "${URL%/}/$PREFIX-messages,$PREFIX-indexed?ignore_unavailable=true" || true
    PREFIX=
}

cleanup() {
    local rc=$?
    drop_indices
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building examples/search_bench (release)"
timeout 1800 cargo build --release --example search_bench >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/examples/search_bench

for backend in $BACKENDS; do
    for run in $(seq 1 "$RUNS"); do
        json=$OUT/$backend-$run.json
        args=(--backend "$backend" --messages "$MESSAGES" --queries "$QUERIES" --batch "$BATCH" --out "$json")
        if [ "$backend" = tantivy ]; then
            args+=(--dir "$WORK/tantivy-$run")
        else
            PREFIX=weft-bench-$$-$run
            args+=(--url "$URL" --index-prefix "$PREFIX")
        fi
        log "$backend run $run/$RUNS: $MESSAGES messages in batches of $BATCH, $QUERIES queries"
        if ! timeout "$RUN_TIMEOUT" "$BIN" "${args[@]}" 2> >(tee "$OUT/$backend-$run.log" >&2) >/dev/null; then
            log "$backend run $run failed or passed ${RUN_TIMEOUT}s (log: $OUT/$backend-$run.log)"
            rm -f "$json"
        fi
        drop_indices
        rm -rf "$WORK/tantivy-$run"
    done
done

# median_row BACKEND: one markdown row, medians with each run's figure in brackets.
median_row() {
    local files=("$OUT/$1"-*.json)
    [ -e "${files[0]}" ] || return 0
    jq -rs --arg backend "$1" '
        def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def fig(f; digits): [.[] | f | select(. != null)] as $v
            | if ($v | length) == 0 then "-"
              else (($v | median) * digits | round / digits | tostring)
                   + " (" + ($v | map(. * digits | round / digits | tostring) | join(" / ")) + ")" end;
        def mib: . / 1048576;
        "| \($backend) | \(.[0].messages) | \(length) | \(fig(.index.docs_per_sec; 1)) | \(fig(.index.docs_per_cpu_sec; 1))"
        + " | \(fig(.search.p50_ms; 100)) | \(fig(.search.p90_ms; 100)) | \(fig(.search.p99_ms; 100))"
        + " | \(fig(.search.max_ms; 100)) | \(fig(.size.bytes_per_message; 1))"
        + " | \(fig(.size.force_merged.bytes_per_message; 1)) | \(fig(.rss.rss_bytes | mib; 1))"
        + " | \(fig(.backend_rss.rss_bytes? | if . == null then null else mib end; 1)) |"
    ' "${files[@]}"
}

# kinds_rows BACKEND: the median p99 (and p50) of each query kind, scope and operator set.
kinds_rows() {
    local files=("$OUT/$1"-*.json)
    [ -e "${files[0]}" ] || return 0
    jq -rs --arg backend "$1" '
        def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def r: . * 100 | round / 100;
        (.[0].search_by | keys[]) as $k
        | "| \($backend) | \($k) | \([.[].search_by[$k].count] | median)"
          + " | \([.[].search_by[$k].p50_ms] | median | r) | \([.[].search_by[$k].p99_ms] | median | r)"
          + " | \([.[].search_by[$k].mean_hits] | median | r) |"
    ' "${files[@]}"
}

echo
echo "| backend | messages | runs | index docs/s | docs per CPU-second | p50 ms | p90 ms | p99 ms | max ms | bytes/message | force-merged bytes/message | RSS MiB | search engine RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for backend in $BACKENDS; do median_row "$backend"; done
echo
echo "| backend | queries | n per run | p50 ms | p99 ms | mean hits |"
echo "|---|---|---|---|---|---|"
for backend in $BACKENDS; do kinds_rows "$backend"; done
