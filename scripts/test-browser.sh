#!/usr/bin/env bash
# The demo chat (/demo) in a real browser: bash scripts/test-browser.sh [extra pytest args]
#
# Uses Debian's Chromium (/usr/bin/chromium; installed with apt-get when missing, never with
# `playwright install`) driven by Playwright for Python, from a venv kept under
# ~/.cache/weft-tools/browser-venv (made once, with pinned versions). Builds target/debug/weft
# when it is missing or older than the sources, starts one node on a free loopback port with a
# temporary data dir and the demo on, runs tests/browser/, and stops the node.
# Screenshots of each step: target/browser-screenshots/. Fails loudly when Chromium cannot start.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CHROMIUM=${WEFT_BROWSER_CHROMIUM:-/usr/bin/chromium}
VENV=${WEFT_BROWSER_VENV:-$HOME/.cache/weft-tools/browser-venv}
PLAYWRIGHT_VERSION=1.65.2
PYTEST_VERSION=8.3.4
SHOTS="$ROOT/target/browser-screenshots"

if [ ! -x "$CHROMIUM" ]; then
    echo "test-browser: $CHROMIUM is missing; installing Debian's chromium" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
    else
        sudo apt-get install -y chromium >/dev/null || { sudo apt-get update >/dev/null && sudo apt-get install -y chromium >/dev/null; }
    fi
fi
if ! "$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1; then
    echo "test-browser: FAILED: Chromium ($CHROMIUM) cannot start headless" >&2
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom about:blank >&2 || true
    exit 1
fi

stamp="$VENV/.weft-pins"
pins="playwright==$PLAYWRIGHT_VERSION pytest==$PYTEST_VERSION"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
    echo "test-browser: making the venv $VENV ($pins)" >&2
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086 # one word per pin
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $pins
    echo "$pins" >"$stamp"
fi

if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
fi
BIN="$ROOT/target/debug/weft"
if [ ! -x "$BIN" ] || [ -n "$(find src web clients/js/dist config Cargo.toml Cargo.lock -newer "$BIN" -type f -print -quit)" ]; then
    echo "test-browser: building $BIN" >&2
    cargo build --quiet --bin weft
fi

DATA=$(mktemp -d)
LOG="$DATA/node.log"
NODE_PID=
stop_node() {
    local rc=$?
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [ "$rc" != 0 ] && [ -f "$LOG" ]; then
        echo "test-browser: the node's log (last 40 lines):" >&2
        tail -n 40 "$LOG" >&2 || true
    fi
    rm -rf "$DATA"
    exit "$rc"
}
trap stop_node EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free loopback port, asked of the kernel (the node binds it a moment later).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# A short presence debounce, so "offline" shows within a test's patience.
env -u WEFT_CONFIG \
    WEFT_SERVER_LISTEN="127.0.0.1:$PORT" \
    WEFT_STORE_DATA_DIR="$DATA/store" \
    WEFT_DEMO_ENABLED=true \
    WEFT_GATEWAY_PRESENCE_DEBOUNCE_MS=300 \
    WEFT_SEARCH_BATCH_DELAY_MS=50 \
    WEFT_LOG_LEVEL=warn \
    "$BIN" serve >"$LOG" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
    if curl -sf "$BASE/readyz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
        echo "test-browser: the node exited at start" >&2
        exit 1
    fi
    sleep 0.1
done
curl -sf "$BASE/readyz" >/dev/null || { echo "test-browser: the node is not ready at $BASE" >&2; exit 1; }

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
echo "test-browser: node at $BASE, Chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}'), screenshots in $SHOTS" >&2
WEFT_BROWSER_BASE="$BASE" \
    WEFT_BROWSER_DATA_DIR="$DATA/store" \
    WEFT_BROWSER_SCREENSHOTS="$SHOTS" \
    WEFT_BROWSER_CHROMIUM="$CHROMIUM" \
    "$VENV/bin/python" -m pytest tests/browser -q -p no:cacheprovider "$@"
