// A scripted WebSocket for the client's state machine: the test plays the
// server (frames, closes), the client sees a WebSocket. For what a live node
// cannot be made to do on cue (frames out of order, a close code of choice).

import { sleep } from './helpers.mjs';

export class FakeServer {
  constructor() {
    this.sockets = [];
    this.refuse = 0; // handshakes to fail (close 1006 before open)
    const server = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.sent = [];
        this.onopen = this.onclose = this.onerror = this.onmessage = null;
        server.sockets.push(this);
        const refuse = server.refuse > 0;
        if (refuse) server.refuse--;
        queueMicrotask(() => {
          if (refuse) {
            this.readyState = 3;
            this.onerror?.({});
            this.onclose?.({ code: 1006, reason: '' });
            return;
          }
          this.readyState = 1;
          this.onopen?.({});
        });
      }
      send(data) {
        if (this.readyState !== 1) throw new Error('not open');
        this.sent.push(JSON.parse(data));
      }
      close(code = 1000, reason = '') {
        if (this.readyState === 3) return;
        this.readyState = 3;
        queueMicrotask(() => this.onclose?.({ code, reason }));
      }
      // The server's side.
      frame(f) {
        this.onmessage?.({ data: JSON.stringify(f) });
      }
      // Several frames in one WebSocket frame, a line each (`?batch=1`).
      frames(fs) {
        this.onmessage?.({ data: fs.map((f) => JSON.stringify(f)).join('\n') });
      }
      serverClose(code, reason = '') {
        this.readyState = 3;
        this.onclose?.({ code, reason });
      }
      welcome(user = 'alice', node = 'node-x') {
        this.frame({ type: 'welcome', user, session: `s-${Math.random()}`, node });
      }
      /** The frames of `type` the client sent. */
      of(type) {
        return this.sent.filter((f) => f.type === type);
      }
    };
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }

  /** Waits for the `n`th socket (1-based) to open. */
  async socket(n, ms = 5_000) {
    const end = Date.now() + ms;
    while (this.sockets.length < n || this.sockets[n - 1].readyState !== 1) {
      if (Date.now() > end) throw new Error(`no socket #${n}`);
      await sleep(5);
    }
    return this.sockets[n - 1];
  }
}

export function msg(chat, seq, extra = {}) {
  return {
    chat,
    seq,
    sender: 'bob',
    body: `m${seq}`,
    sent_at: '2026-01-01T00:00:00Z',
    client_msg_id: `c${seq}`,
    reply_to: null,
    ...extra,
  };
}
