#!/usr/bin/env bash
# The OpenAPI document against a live node: bash scripts/openapi-check.sh
#
# Starts a node (target/debug/weft, built if needed) on a free loopback port with an
# embedded store in a temporary directory (no other service needed), downloads
# GET /api/v1/openapi.json, validates it with openapi-spec-validator, then runs Schemathesis
# from it against the node: no 5xx, and every status, content type, header and body as
# documented. Schemathesis gets a real application (its token for every `{token}`), with a
# chat, a message and a webhook, so that it gets past the 404s. The tools live in a venv
# under ~/.cache/weft-tools/openapi-venv, created once and reused while the pinned versions
# are the ones installed. Exits non-zero on any failure; prints one summary line.
#
# WEFT_OPENAPI_EXAMPLES (default 20): Schemathesis' examples per operation and phase.
# WEFT_OPENAPI_SEED (default 17): its seed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi

VALIDATOR_VERSION=0.9.0
SCHEMATHESIS_VERSION=4.32.5
VENV="$HOME/.cache/weft-tools/openapi-venv"
EXAMPLES=${WEFT_OPENAPI_EXAMPLES:-20}
SEED=${WEFT_OPENAPI_SEED:-17}
started=$(date +%s)

fail() {
    echo "openapi-check: $*" >&2
    exit 1
}

# The tools, pinned.
installed() {
    "$VENV/bin/python" - "$VALIDATOR_VERSION" "$SCHEMATHESIS_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("openapi-spec-validator"), version("schemathesis")) == (sys.argv[1], sys.argv[2]) else 1)
EOF
}
if ! [ -x "$VENV/bin/python" ] || ! installed; then
    echo "openapi-check: installing openapi-spec-validator $VALIDATOR_VERSION and schemathesis $SCHEMATHESIS_VERSION in $VENV"
    mkdir -p "$(dirname "$VENV")"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "openapi-spec-validator==$VALIDATOR_VERSION" "schemathesis==$SCHEMATHESIS_VERSION"
    installed || fail "the pinned tools did not install"
fi

# The node: a no-op when target/debug/weft is up to date.
cargo build --quiet --bin weft
WEFT_BIN="$ROOT/target/debug/weft"

work=$(mktemp -d)
node_pid=""
stop_node() {
    local rc=$?
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$node_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -s "$work/node.log" ]; then
        echo "openapi-check: the node's last log lines:" >&2
        tail -n 20 "$work/node.log" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap stop_node EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Port 0: the node says where it listens (no probe-then-bind race). Webhooks may name a
# loopback URL (the one Schemathesis is given; nothing listens there).
WEFT_SERVER_LISTEN=127.0.0.1:0 \
    WEFT_STORE_DATA_DIR="$work/data" \
    WEFT_WEBHOOKS_ALLOW_HTTP=true \
    WEFT_WEBHOOKS_ALLOW_PRIVATE=true \
    WEFT_LOG_FORMAT=json \
    RUST_LOG=warn,weft::server=info \
    "$WEFT_BIN" serve >"$work/node.log" 2>&1 &
node_pid=$!

base=""
for _ in $(seq 1 300); do
    kill -0 "$node_pid" 2>/dev/null || fail "the node exited at start"
    addr=$(grep -o '"addr":"127\.0\.0\.1:[0-9]*"' "$work/node.log" | head -n 1 | cut -d'"' -f4 || true)
    if [ -n "$addr" ] && curl -fsS -o /dev/null "http://$addr/readyz" 2>/dev/null; then
        base="http://$addr"
        break
    fi
    sleep 0.1
done
[ -n "$base" ] || fail "the node was not ready within 30 s"

# The document: served, OpenAPI 3.1, valid.
curl -fsS "$base/api/v1/openapi.json" -o "$work/openapi.json" || fail "GET /api/v1/openapi.json failed"
version=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["openapi"])' "$work/openapi.json")
case "$version" in
3.1.*) ;;
*) fail "the document is OpenAPI $version, not 3.1" ;;
esac
"$VENV/bin/openapi-spec-validator" "$work/openapi.json" >"$work/validator.log" 2>&1 ||
    { cat "$work/validator.log" >&2; fail "openapi-spec-validator refused the document"; }
operations=$("$VENV/bin/python" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
print(sum(1 for item in doc["paths"].values() for m in item if m in ("get", "put", "post", "patch", "delete")))
' "$work/openapi.json")

# Something to work on: an application, a chat with a member, a message, a webhook.
json_post() {
    curl -fsS -X "${3:-POST}" -H 'content-type: application/json' -d "$2" "$base$1"
}
field() {
    "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
token=$(json_post /api/v1/applications '{"name":"schemathesis"}' | field token) || fail "could not create an application"
app="/api/v1/applications/$token"
chat=$(json_post "$app/chats" '{"name":"general","created_by":"alice"}' | field number) || fail "could not create a chat"
json_post "$app/chats/$chat/messages" '{"body":"hello @bob","sender":"alice"}' >/dev/null || fail "could not post a message"
webhook=$(json_post "$app/webhooks" '{"url":"http://127.0.0.1:9/hook","events":["message.created"]}' | field id) ||
    fail "could not create a webhook"

cat >"$work/schemathesis.toml" <<EOF
[generation]
database = "none"
max-examples = $EXAMPLES

[parameters]
"path.token" = "$token"
"path.number" = $chat
"path.message" = 1
"path.id" = "$webhook"
EOF

# One worker: Python 3.11's AST constructor keeps its recursion depth per interpreter, not per
# thread, so Hypothesis parsing lambdas in two worker threads at once can fail with
# "SystemError: AST constructor recursion depth mismatch" (cpython#106905), a crash of the
# tool that reads as a failed check.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
if ! (cd "$work" && "$VENV/bin/st" --config-file "$work/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --url "$base" \
    --checks "$checks" \
    --seed "$SEED" \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    --output-truncate false \
    --suppress-health-check all >"$work/schemathesis.log" 2>&1); then
    cat "$work/schemathesis.log" >&2
    fail "schemathesis failed (above)"
fi
tested=$(grep -oE 'Tested: [0-9]+' "$work/schemathesis.log" | grep -oE '[0-9]+' || echo "?")
cases=$(grep -oE '[0-9]+ generated' "$work/schemathesis.log" | grep -oE '[0-9]+' || echo "?")

echo "openapi-check: OpenAPI $version document valid ($operations operations); schemathesis $SCHEMATHESIS_VERSION: $cases cases on $tested operations, no failure; $(($(date +%s) - started)) s"
