#!/usr/bin/env python3
"""How many messages per second one browser tab of the demo chat keeps up with.

    ~/.cache/weft-tools/browser-venv/bin/python loadtest/browser-tab.py [--bin target/release/weft]
        [--rates 50,100,200,400,800,1600,3200] [--seconds 5]

(The venv is the one scripts/test-browser.sh makes: Playwright with Debian's Chromium.)
Starts a node (loopback, temporary data dir, the demo on, the per-user send limits
lifted), opens the demo in headless Chromium as `reader` with a direct chat open, and has
`sender` (a Node WebSocket client: four sessions, each pipelining up to 60 sends) push messages into that
chat at each rate in turn for --seconds. Each message carries its send time; the tab
counts the messages it puts on screen (a MutationObserver on the message list, each seq
once) and how long after the send each got there. A step is kept up with when the tab
showed every message within 2 s of the step's end and the 99th percentile of send-to-
screen stayed under 1 s. The tab keeps every message it showed (as the demo does), so
later steps draw into a longer list.
"""
import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parent.parent

SENDER = r"""
// node -e puts the arguments right after the executable.
const [base, token, target, rate, seconds, tag] = process.argv.slice(1);
const url = `${base.replace('http', 'ws')}/ws?token=${token}`;
// Several sessions of the sender: each may pipeline 64 sends, and one is not enough at the top rates.
const SOCKETS = 4, WINDOW = 60;
const acks = new Map();
let nextId = 1;
function connect() {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'welcome') resolve(ws);
      if ((f.type === 'ack' || f.type === 'error') && acks.has(f.id)) { acks.get(f.id)(f); acks.delete(f.id); }
    };
    ws.onerror = () => reject(new Error('socket error'));
    ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
  });
}
function send(ws, frame) {
  const id = nextId++;
  const answer = new Promise((resolve) => acks.set(id, resolve));
  ws.send(JSON.stringify({ ...frame, id }));
  return answer;
}
if (target.startsWith('new:')) {
  const ws = await connect();
  const ack = await send(ws, { type: 'send', recipients: [target.slice(4)], body: 'hello', client_msg_id: `bt-${Date.now()}` });
  console.log(JSON.stringify({ chat: ack.chat }));
  process.exit(0);
}
const sockets = await Promise.all(Array.from({ length: SOCKETS }, connect));
const inflight = sockets.map(() => new Set());
const chat = Number(target), total = Math.round(Number(rate) * Number(seconds));
const start = Date.now();
let sent = 0, acked = 0, failed = 0;
while (sent < total) {
  const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * Number(rate)) + 1);
  let room = true;
  while (sent < due) {
    // The least busy session, if any has room in its window.
    const slot = inflight.reduce((best, w, i) => (w.size < inflight[best].size ? i : best), 0);
    if (inflight[slot].size >= WINDOW) { room = false; break; }
    const p = send(sockets[slot], { type: 'send', chat, body: `${tag} ${sent} t=${Date.now()}`, client_msg_id: `${tag}-${sent}` })
      .then((f) => { if (f.type === 'ack') acked++; else failed++; inflight[slot].delete(p); });
    inflight[slot].add(p);
    sent++;
  }
  await new Promise((r) => setTimeout(r, room ? 4 : 1));
}
await Promise.all(inflight.flatMap((w) => [...w]));
console.log(JSON.stringify({ sent, acked, failed, seconds: (Date.now() - start) / 1000 }));
process.exit(0);
"""

OBSERVER = """
() => {
  const list = document.getElementById('message-list');
  window.__tab = { seen: new Set(), lat: [], times: [] };
  new MutationObserver((mutations) => {
    const now = Date.now();
    for (const m of mutations) for (const n of m.addedNodes) {
      if (!n.dataset || !n.dataset.seq || window.__tab.seen.has(n.dataset.seq)) continue;
      window.__tab.seen.add(n.dataset.seq);
      const t = /t=(\\d+)/.exec(n.textContent);
      if (t) { window.__tab.lat.push(now - Number(t[1])); window.__tab.times.push(now); }
    }
  }).observe(list, { childList: true });
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session(base, user):
    req = urllib.request.Request(
        f"{base}/demo/api/session",
        data=json.dumps({"user": user}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["token"]


def node_sender(base, token, target, rate=0, seconds=0, tag="m"):
    out = subprocess.run(
        ["node", "--experimental-websocket", "--no-warnings", "--input-type=module", "-e", SENDER,
         base, token, str(target), str(rate), str(seconds), tag],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"browser-tab: the sender failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_bin = ROOT / "target/release/weft"
    parser.add_argument("--bin", default=str(default_bin if default_bin.exists() else ROOT / "target/debug/weft"))
    parser.add_argument("--rates", default="50,100,200,400,800,1600,3200")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not shutil.which("node"):
        sys.exit("browser-tab: needs node (20+) for the sender")

    data = tempfile.mkdtemp(prefix="weft-tab-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "WEFT_CONFIG"}
    env.update({
        "WEFT_SERVER_LISTEN": f"127.0.0.1:{port}",
        "WEFT_STORE_DATA_DIR": f"{data}/store",
        "WEFT_DEMO_ENABLED": "true",
        "WEFT_LOG_LEVEL": "warn",
        # One sender pushes it all: lift its per-user and per-session budgets.
        "WEFT_GATEWAY_SEND_RATE_PER_SEC": "100000",
        "WEFT_GATEWAY_SEND_BURST": "100000",
        "WEFT_GATEWAY_FRAME_RATE_PER_SEC": "100000",
        "WEFT_GATEWAY_FRAME_BURST": "100000",
        "WEFT_SEARCH_BACKEND": "none",
    })
    node = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(f"{data}/node.log", "w"))
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/readyz")
                break
            except OSError:
                time.sleep(0.1)
        sender_token, reader_token = session(base, "sender"), session(base, "reader")
        del reader_token
        chat = node_sender(base, sender_token, "new:reader")["chat"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_context(viewport={"width": 1100, "height": 720}).new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/demo/#chat={chat}")
            page.get_by_label("Your user id", exact=True).fill("reader")
            page.get_by_role("button", name="Sign in").click()
            page.locator("#chat-title").filter(has_text="sender").wait_for()
            page.locator("#message-list .msg").first.wait_for()
            page.evaluate(OBSERVER)
            print(f"browser-tab: {args.bin}, Chromium {browser.version}, {args.seconds:g} s per step")
            print(f"{'target/s':>9} {'sent/s':>8} {'shown':>7} {'behind':>7} {'p50 ms':>7} {'p99 ms':>7}  kept up")
            best, misses, total = 0, 0, 1  # the chat's first message counts
            for rate in [int(r) for r in args.rates.split(",")]:
                page.evaluate("() => { window.__tab.lat = []; window.__tab.times = []; }")
                before = page.evaluate("() => window.__tab.seen.size")
                stats = node_sender(base, sender_token, chat, rate, args.seconds, f"r{rate}")
                deadline = time.time() + 2
                shown = 0
                while time.time() < deadline:
                    shown = page.evaluate("() => window.__tab.seen.size") - before
                    if shown >= stats["acked"]:
                        break
                    time.sleep(0.05)
                total += stats["acked"]
                lat = page.evaluate("() => window.__tab.lat")
                p50, p99 = percentile(lat, 50), percentile(lat, 99)
                achieved = stats["sent"] / stats["seconds"]
                kept = shown >= stats["acked"] and p99 < 1000
                limited = " (the sender's top)" if achieved < 0.9 * rate else ""
                print(f"{rate:>9} {achieved:>8.0f} {shown:>7} {stats['acked'] - shown:>7} "
                      f"{p50:>7.0f} {p99:>7.0f}  {'yes' if kept else 'no'}{limited}")
                if kept:
                    best, misses = max(best, achieved), 0
                else:
                    misses += 1
                    if misses == 2:
                        break
                # Let the tab drain before the next step.
                for _ in range(100):
                    if page.evaluate("() => window.__tab.seen.size") - before >= stats["acked"]:
                        break
                    time.sleep(0.1)
            for _ in range(300):
                if page.evaluate("() => window.__tab.seen.size") >= total - 1:
                    break
                time.sleep(0.1)
            final = page.evaluate("() => window.__tab.seen.size") + 1
            print(f"browser-tab: in the end the tab showed {final} of the {total} messages sent")
            print(f"browser-tab: one tab keeps up with {best:.0f} messages/s", "(page errors: %s)" % errors if errors else "")
            browser.close()
    finally:
        node.terminate()
        node.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
