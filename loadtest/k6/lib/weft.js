// Shared helpers of weft's k6 scenarios: configuration from __ENV, the REST
// calls that set a run up, a protocol client (send, ack, deliveries, resume
// with `hello`, gap `sync`), the custom metrics, the thresholds, and a
// barrier between VUs.
//
// Plain ES module, no remote imports; only k6's own modules. Written for
// k6 v1.x (`k6/websockets`, one VU holds many sockets) and kept to what the
// bundled Node runner (../compat) implements as well.

import http from 'k6/http';
import { WebSocket } from 'k6/websockets';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { setTimeout, clearTimeout } from 'k6/timers';

// ---------------------------------------------------------------- settings

/** A string setting: `__ENV[name]`, or `def` when unset or empty. */
export function str(name, def) {
  const v = __ENV[name];
  return v === undefined || v === null || String(v).trim() === '' ? def : String(v).trim();
}

/** A whole-number setting of at least `min`. */
export function int(name, def, min) {
  const raw = str(name, undefined);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, not "${raw}"`);
  const v = parseInt(raw, 10);
  if (min !== undefined && v < min) throw new Error(`${name} must be at least ${min}, not ${v}`);
  return v;
}

/** A number setting of at least `min`. */
export function num(name, def, min) {
  const raw = str(name, undefined);
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!isFinite(v)) throw new Error(`${name} must be a number, not "${raw}"`);
  if (min !== undefined && v < min) throw new Error(`${name} must be at least ${min}, not ${v}`);
  return v;
}

/** Node base URLs: WEFT_URLS (comma list), else WEFT_URL, else http://127.0.0.1:8080. */
export function nodeUrls() {
  const list = str('WEFT_URLS', str('WEFT_URL', 'http://127.0.0.1:8080'))
    .split(',')
    .map((s) => s.trim().replace(/\/+$/, ''))
    .filter((s) => s !== '');
  if (list.length === 0) throw new Error('WEFT_URLS names no node');
  for (const u of list) {
    if (!/^https?:\/\/[^/]+$/.test(u)) throw new Error(`a node URL is http(s)://host:port, not "${u}"`);
  }
  return list;
}

/** The WebSocket URL of a node for a user token. */
export function wsUrl(base, jwt) {
  return base.replace(/^http/, 'ws') + '/ws?token=' + encodeURIComponent(jwt);
}

/**
 * Settings every scenario shares (seconds in the environment, ms here):
 * WEFT_DURATION (5) sending/holding, WEFT_WARMUP (0) of it not measured,
 * WEFT_DRAIN (10) at most for acks and deliveries after it, WEFT_PREPARE (60)
 * at most for every VU to be connected, WEFT_BODY_BYTES (64), WEFT_WINDOW (32)
 * unacknowledged sends per socket, WEFT_CONNECT_CONCURRENCY (50) handshakes in
 * flight per VU, WEFT_SEND_LIMIT (20) and WEFT_SEND_BURST (40) the node's
 * per-user send limit, which each client keeps to (0: none), WEFT_ADMIN_KEY.
 */
export function commonConfig() {
  const cfg = {
    urls: nodeUrls(),
    adminKey: str('WEFT_ADMIN_KEY', ''),
    durationMs: num('WEFT_DURATION', 5, 0.1) * 1000,
    warmupMs: num('WEFT_WARMUP', 0, 0) * 1000,
    drainMs: num('WEFT_DRAIN', 10, 0) * 1000,
    prepareMs: num('WEFT_PREPARE', 60, 1) * 1000,
    bodyBytes: int('WEFT_BODY_BYTES', 64, 16),
    window: int('WEFT_WINDOW', 32, 1),
    connectConcurrency: int('WEFT_CONNECT_CONCURRENCY', 50, 1),
    sendLimit: num('WEFT_SEND_LIMIT', 20, 0),
  };
  return cfg;
}

/** Warns when each user would send faster than the per-user limit the clients keep to. */
export function warnRate(cfg, perUser) {
  if (cfg.sendLimit > 0 && perUser > cfg.sendLimit) {
    console.warn(
      `each user would send ${perUser.toFixed(1)}/s, above WEFT_SEND_LIMIT=${cfg.sendLimit}/s (the node's per-user ` +
        `limit; its default is 20/s, burst 40): the clients hold back to ${cfg.sendLimit}/s. For more, run the node ` +
        'with WEFT_GATEWAY_SEND_RATE_PER_SEC / WEFT_GATEWAY_SEND_BURST raised and set WEFT_SEND_LIMIT / ' +
        'WEFT_SEND_BURST to match (0: no limit)',
    );
  }
}

/** k6 options: one per-vu-iterations scenario of `vus` VUs, one iteration each. */
export function scenarioOptions(name, vus, maxMs, thresholds) {
  const scenarios = {};
  scenarios[name] = {
    executor: 'per-vu-iterations',
    vus: vus,
    iterations: 1,
    maxDuration: `${Math.ceil(maxMs / 1000) + 60}s`,
    gracefulStop: '30s',
  };
  return {
    scenarios: scenarios,
    setupTimeout: '300s',
    thresholds: thresholds,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  };
}

/**
 * Thresholds: every check passed and no error; with `messages`, nothing
 * lost, duplicated, unexpected or unacknowledged, and something delivered.
 * WEFT_P95_MS adds a bound on the 95th percentile of delivery latency.
 */
export function thresholds(messages, extra) {
  const t = { checks: ['rate==1'], weft_errors: ['count==0'] };
  if (messages) {
    t.weft_lost = ['count==0'];
    t.weft_duplicates = ['count==0'];
    t.weft_unexpected = ['count==0'];
    t.weft_unacked = ['count==0'];
    t.weft_delivered = ['count>0'];
    const p95 = num('WEFT_P95_MS', 0, 0);
    if (p95 > 0) t.weft_delivery_latency = [`p(95)<${p95}`];
  }
  if (extra) {
    for (const k of Object.keys(extra)) t[k] = extra[k];
  }
  return t;
}

// ----------------------------------------------------------------- metrics

// Created here, in the init context of every VU that imports this module.
const counters = [];

function counter(name) {
  const c = new Counter(name);
  counters.push(c);
  return c;
}

export const m = {
  /** Socket created → `welcome` received, ms. */
  connect: new Trend('weft_ws_connect', true),
  /** Sockets that got their `welcome`. */
  welcomed: counter('weft_ws_welcomed'),
  /** Connection attempts that failed (no welcome). */
  connectFailures: counter('weft_ws_connect_failures'),
  /** Sockets the node closed, or that broke, while the run still used them (tag `reason`). */
  dropped: counter('weft_ws_dropped'),
  /** Sockets reconnected (storm). */
  reconnects: counter('weft_reconnects'),
  /** Drop → new welcome, ms (storm). */
  reconnectTime: new Trend('weft_reconnect_time', true),
  /** Clients that could not reconnect within WEFT_RECONNECT seconds (storm). */
  reconnectFailures: counter('weft_reconnect_failures'),
  /** `send` frames written (first tries; resends not counted). */
  sent: counter('weft_sent'),
  /** Sends acknowledged. */
  acked: counter('weft_acked'),
  /** Sends never acknowledged (an error answer, or none before the drain ended). */
  unacked: counter('weft_unacked'),
  /** `send` → `ack`, ms. */
  ackLatency: new Trend('weft_ack_latency', true),
  /** Messages received, first copies only (live, or in a `hello` catch-up). */
  delivered: counter('weft_delivered'),
  /** Send (timestamp in the body) → live delivery, ms; messages sent after the warm-up. */
  latency: new Trend('weft_delivery_latency', true),
  /** Messages a socket should have received and did not (tag `kind`). */
  lost: counter('weft_lost'),
  /** Messages received twice on one connection, or at or below a resume position. */
  duplicates: counter('weft_duplicates'),
  /** Messages received that no send of the run called for. */
  unexpected: counter('weft_unexpected'),
  /** Error frames and protocol surprises (tag `code`). */
  errors: counter('weft_errors'),
  /** `rate_limited` answers (the send is retried after `retry_after_ms`). */
  rateLimited: counter('weft_rate_limited'),
  /** `in_flight` and `*_unavailable` answers (the send is retried). */
  retries: counter('weft_retries'),
  /** Messages received in `hello` catch-ups. */
  resumed: counter('weft_resumed_messages'),
  /** Gaps filled with `sync` (storm). */
  gapSyncs: counter('weft_gap_syncs'),
  /** Paced sends skipped while the client had no socket (storm). */
  skippedSends: counter('weft_sends_skipped'),
};

/** Adds 0 to every counter, so each one exists in the summary and its thresholds see data. */
export function touchCounters() {
  for (const c of counters) c.add(0);
}

const logged = {};

/** Logs the first few lines of each kind, then stays quiet about it. */
function note(kind, line) {
  logged[kind] = (logged[kind] || 0) + 1;
  if (logged[kind] <= 5) console.warn(`weft: ${line}`);
  else if (logged[kind] === 6) console.warn(`weft: (more ${kind} lines are not shown)`);
}

function error(code, detail) {
  m.errors.add(1, { code: code });
  note(code, `${code}${detail ? ': ' + detail : ''}`);
}

// ------------------------------------------------------------------ timing

export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Waits until `pred()` holds (polled every `stepMs`) or `deadline` (epoch ms); true if it held. */
export async function until(pred, deadline, stepMs) {
  const step = stepMs || 50;
  for (;;) {
    if (pred()) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await delay(Math.min(step, left));
  }
}

/** Runs `fn(item, index)` over `items`, at most `limit` at a time. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  }
  const workers = [];
  for (let w = 0; w < Math.min(limit, items.length); w++) workers.push(worker());
  await Promise.all(workers);
  return results;
}

/** This VU's index (0-based) among `vus`, and the items of `n` it owns (i % vus). */
export function share(n, vus) {
  const v = (exec.vu.idInTest - 1) % vus;
  const mine = [];
  for (let i = v; i < n; i += vus) mine.push(i);
  return { index: v, mine: mine };
}

// -------------------------------------------------------------------- REST

function headers(adminKey) {
  const h = { 'content-type': 'application/json' };
  if (adminKey) h.authorization = `Bearer ${adminKey}`;
  return h;
}

function describe(res) {
  return `${res.status}${res.error ? ' ' + res.error : ''} ${String(res.body || '').slice(0, 200)}`;
}

/** setup(): creates an application (on the first node that answers); its token. */
export function createApp(cfg, name) {
  let last = null;
  for (const base of cfg.urls) {
    const res = http.post(`${base}/api/v1/applications`, JSON.stringify({ name: name }), {
      headers: headers(cfg.adminKey),
      timeout: '30s',
      tags: { name: 'POST /api/v1/applications' },
    });
    if (res.status === 201) return res.json().token;
    if (res.status === 401 || res.status === 403) {
      throw new Error(`creating an application: ${describe(res)} — set WEFT_ADMIN_KEY to the node's admin key`);
    }
    last = res;
  }
  throw new Error(`creating an application failed on every node: ${describe(last)}`);
}

/** setup(): creates `count` chats in the application; their numbers. */
export function createChats(cfg, app, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const res = http.post(`${cfg.urls[0]}/api/v1/applications/${app}/chats`, '{}', {
      headers: headers(''),
      timeout: '30s',
      tags: { name: 'POST /api/v1/applications/:token/chats' },
    });
    if (res.status !== 201) throw new Error(`creating a chat: ${describe(res)}`);
    out.push(res.json().number);
  }
  return out;
}

/** Asynchronous REST calls of one application, failing over between the nodes. */
export class Rest {
  constructor(urls, app, first) {
    this.urls = urls;
    this.app = app;
    this.at = (first || 0) % urls.length;
  }

  /**
   * One call. With no answer or a 5xx it tries the next node, and keeps going
   * round the nodes for 30 s (a node may be restarting during a storm).
   */
  async call(method, path, body, name) {
    const params = {
      headers: headers(''),
      timeout: '30s',
      tags: { name: `${method} /api/v1/applications/:token${name || path}` },
    };
    const deadline = Date.now() + 30000;
    let res = null;
    for (let attempt = 1; ; attempt++) {
      const url = `${this.urls[this.at]}/api/v1/applications/${this.app}${path}`;
      res = await http.asyncRequest(method, url, body === undefined ? null : JSON.stringify(body), params);
      if (res.status !== 0 && res.status < 500) return res;
      this.at = (this.at + 1) % this.urls.length;
      if (Date.now() >= deadline) return res;
      if (attempt % this.urls.length === 0) await delay(250);
    }
  }

  async addMember(chat, user) {
    const res = await this.call('PUT', `/chats/${chat}/members/${user}`, undefined, '/chats/:n/members/:user');
    if (res.status !== 204) throw new Error(`adding ${user} to chat ${chat}: ${describe(res)}`);
  }

  /** A user token valid for `ttlSecs` (1 h at least). */
  async userToken(user, ttlSecs) {
    const ttl = Math.min(Math.max(3600, Math.ceil(ttlSecs || 0)), 30 * 86400);
    const res = await this.call('POST', `/users/${user}/tokens`, { ttl_seconds: ttl }, '/users/:user/tokens');
    if (res.status !== 201) throw new Error(`a token for ${user}: ${describe(res)}`);
    return res.json().token;
  }

  /** Every stored message number of a chat (paged newest first with `before`). */
  async stored(chat) {
    const out = new Set();
    let before = 0;
    for (;;) {
      const q = before > 0 ? `?per_page=500&before=${before}` : '?per_page=500';
      const res = await this.call('GET', `/chats/${chat}/messages${q}`, undefined, '/chats/:n/messages');
      if (res.status !== 200) throw new Error(`listing chat ${chat}: ${describe(res)}`);
      const page = res.json();
      for (const msg of page) out.add(msg.number);
      if (page.length < 500) return out;
      before = page[page.length - 1].number;
    }
  }

  async memberCount(chat) {
    let count = 0;
    for (let page = 1; ; page++) {
      const res = await this.call('GET', `/chats/${chat}/members?per_page=500&page=${page}`, undefined, '/chats/:n/members');
      if (res.status !== 200) throw new Error(`listing the members of chat ${chat}: ${describe(res)}`);
      const list = res.json();
      count += list.length;
      if (list.length < 500) return count;
    }
  }

  /**
   * A barrier between VUs: this VU joins chat `chat` (an idempotent PUT), then
   * waits until `count` members have joined or `deadline` passes; true if all did.
   */
  async barrier(chat, count, deadline) {
    await this.addMember(chat, `vu-${exec.vu.idInTest}`);
    for (;;) {
      if ((await this.memberCount(chat)) >= count) return true;
      if (Date.now() >= deadline) return false;
      await delay(200);
    }
  }
}

/** Users' tokens, minted `concurrency` at a time (adding each to `chat` first when given). */
export async function tokens(rest, users, chats, ttlSecs, concurrency) {
  return pool(users, concurrency || 16, async (user, i) => {
    const chat = chats ? chats[i] : null;
    if (chat) await rest.addMember(chat, user);
    return rest.userToken(user, ttlSecs);
  });
}

// ------------------------------------------------------------------ client

const WELCOME_TIMEOUT_MS = 10000;
/**
 * The node's per-user send limit (0: none). Clients keep to 90 % of its rate and half
 * its burst: sends paced exactly at the limit can reach the node closer together than
 * they left, and each refusal counts towards the node's flood limit (20 error answers
 * in 10 s close the socket with 4100).
 */
const SEND_LIMIT = num('WEFT_SEND_LIMIT', 20, 0) * 0.9;
const SEND_BURST = Math.max(1, Math.floor(num('WEFT_SEND_BURST', 40, 1) / 2));
/** A gap in `seq` still open this long is filled with `sync` (the protocol's advice). */
const GAP_WAIT_MS = 500;

function closeCode(e) {
  return e && e.code !== undefined && e.code !== null ? String(e.code) : 'unknown';
}

function setOf(map, chat) {
  let s = map[chat];
  if (!s) {
    s = new Set();
    map[chat] = s;
  }
  return s;
}

/**
 * One user's protocol client: one socket at a time. It sends paced `send`
 * frames, keeps unacknowledged ones to retry with the same `client_msg_id`,
 * records every message number it holds (own acked sends and received
 * messages) and counts duplicates. With `reconnect`, a socket the node closes
 * is replaced by one to the next node URL, resumed with `hello`, and the
 * pending sends are resent; with `gapSync`, a gap still open after 500 ms is
 * filled with `sync`.
 */
export class Client {
  constructor(o) {
    this.user = o.user;
    this.jwt = o.jwt;
    this.urls = o.urls;
    this.urlAt = o.urlAt || 0;
    this.tag = o.tag || o.user;
    this.chats = o.chats || [];
    this.reconnect = !!o.reconnect;
    this.reconnectMs = o.reconnectMs || 30000;
    this.gapSync = !!o.gapSync;
    this.pad = 'x'.repeat(Math.max(1, (o.bodyBytes || 64) - 40));
    this.measureFrom = Infinity;

    this.ws = null;
    this.node = null;
    this.connections = 0;
    this.stopped = false;
    this.gone = null;
    this.closedWaiters = [];

    this.held = {}; // chat -> Set of numbers held (own acked sends and received messages)
    this.skipped = {}; // chat -> Set of numbers a gap sync found missing (skipped for good, or late)
    this.mark = {}; // chat -> highest number up to which every number is held or skipped
    this.here = {}; // this connection: chat -> Set of numbers received live or in its catch-up
    this.after = {}; // this connection: chat -> the position its `hello` resumed from
    this.gapPending = {};
    this.requests = {}; // sync id -> { chat, from, to }
    this.syncSerial = 0;

    this.delivered = 0; // first copies received
    this.duplicates = 0;

    this.nextId = 0;
    this.inFlight = new Map(); // id -> { text, sentAt }
    this.acked = []; // [chat, seq] of each acknowledged send
    this.chat = null;
    this.plan = null;
    this.paced = 0;
    this.timer = null;
    this.tokens = SEND_BURST;
    this.tokensAt = Date.now();
    this.pausedUntil = 0;
  }

  // ---- connection

  /** One connection attempt to the current URL; resolves with the welcome frame. */
  open() {
    const base = this.urls[this.urlAt % this.urls.length];
    const self = this;
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      let welcomed = false;
      let settled = false;
      const ws = new WebSocket(wsUrl(base, self.jwt));
      const timer = setTimeout(() => fail(`no welcome from ${base} within ${WELCOME_TIMEOUT_MS} ms`), WELCOME_TIMEOUT_MS);
      function fail(why) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          ws.close();
        } catch (e) {
          // already closed
        }
        reject(new Error(why));
      }
      ws.onmessage = (e) => {
        let f;
        try {
          f = JSON.parse(e.data);
        } catch (err) {
          error('unreadable_frame', String(e.data).slice(0, 100));
          return;
        }
        if (!welcomed) {
          if (!f || f.type !== 'welcome') {
            fail(`first frame from ${base} is ${JSON.stringify(f).slice(0, 100)}, not welcome`);
            return;
          }
          welcomed = true;
          settled = true;
          clearTimeout(timer);
          self.ws = ws;
          self.node = f.node;
          self.connections++;
          self.here = {};
          self.after = {};
          m.connect.add(Date.now() - t0);
          m.welcomed.add(1);
          resolve(f);
          return;
        }
        if (self.ws === ws) self.onFrame(f);
      };
      ws.onerror = (e) => {
        const why = `error: ${(e && e.error) || 'unknown'}`;
        if (!welcomed) fail(`${base}: ${why}`);
        else self.onGone(ws, why);
      };
      ws.onclose = (e) => {
        if (!welcomed) fail(`${base}: closed before welcome (code ${closeCode(e)})`);
        else self.onGone(ws, `closed ${closeCode(e)}`);
        const waiters = self.closedWaiters;
        self.closedWaiters = [];
        for (const w of waiters) w();
      };
    });
  }

  /** The first connection: one attempt, counted and checked. True on welcome. */
  async connect() {
    try {
      await this.open();
      check(true, { 'welcome received': (ok) => ok });
      return true;
    } catch (e) {
      m.connectFailures.add(1);
      check(false, { 'welcome received': (ok) => ok });
      note('connect', `${this.user}: ${e.message}`);
      this.gone = e.message;
      return false;
    }
  }

  onGone(ws, why) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.stopped) return;
    const reason = why.replace(/^error: .*/, 'error');
    m.dropped.add(1, { reason: reason });
    if (why === 'closed 4100') {
      note('flood', `${this.user}: the node closed the socket for flooding (4100): its error answers, rate_limited ` +
        'ones included, passed gateway.max_bad_frames; keep each user under the node\'s send limit (WEFT_SEND_LIMIT)');
    }
    if (this.reconnect) {
      this.reconnectLoop(why);
    } else {
      this.gone = why;
      note('dropped', `${this.user}'s socket on ${this.node} ${why}`);
    }
  }

  async reconnectLoop(why) {
    const t0 = Date.now();
    const deadline = t0 + this.reconnectMs;
    let attempt = 0;
    while (!this.stopped && Date.now() < deadline) {
      this.urlAt++;
      try {
        await this.open();
        if (this.stopped) {
          const ws = this.ws;
          this.ws = null;
          if (ws) ws.close(1000);
          return;
        }
        m.reconnects.add(1);
        m.reconnectTime.add(Date.now() - t0);
        this.resume();
        for (const entry of this.inFlight.values()) this.ws.send(entry.text);
        this.tick();
        return;
      } catch (e) {
        attempt++;
        await delay(Math.min(2000, 100 * Math.pow(2, Math.min(attempt, 5))));
      }
    }
    if (!this.stopped) {
      m.reconnectFailures.add(1);
      this.gone = `${why}; no node took it back within ${this.reconnectMs} ms`;
      note('reconnect', `${this.user}: ${this.gone}`);
    }
  }

  /** `hello` with the last number held without a gap, for every chat it knows. */
  resume() {
    const chats = this.chats.slice();
    for (const k of Object.keys(this.held)) {
      if (chats.indexOf(Number(k)) < 0) chats.push(Number(k));
    }
    if (chats.length === 0) return;
    const resume = chats.map((chat) => ({ chat: chat, after: this.mark[chat] || 0 }));
    for (const r of resume) this.after[r.chat] = r.after;
    this.ws.send(JSON.stringify({ type: 'hello', id: `h${this.connections}`, resume: resume }));
  }

  /** Stops sending and closes the socket; resolves once closed (1 s at most). */
  close() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (!ws) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 1000);
      this.closedWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
      try {
        ws.close(1000);
      } catch (e) {
        clearTimeout(t);
        resolve();
      }
    });
  }

  // ---- sending

  /**
   * Sends paced from `from` (+ `offsetMs`) until `until` (epoch ms) at `rate`
   * per second (0: as fast as the window allows), at most `window`
   * unacknowledged. `to` is `{chat}` or `{recipients: [...]}`; a recipients
   * send keeps one in flight until its ack names the chat, then sends there.
   */
  startSending(plan) {
    this.plan = plan;
    this.paced = 0;
    if (plan.to.chat) this.chat = plan.to.chat;
    this.tick();
  }

  window() {
    return this.chat === null ? 1 : this.plan.window;
  }

  tick() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const plan = this.plan;
    if (!plan || this.stopped) return;
    const now = Date.now();
    if (now >= plan.until) return;
    const start = plan.from + (plan.offsetMs || 0);
    let due;
    if (now < start) due = 0;
    else if (plan.rate > 0) due = Math.floor(((now - start) / 1000) * plan.rate) + 1;
    else due = Infinity;
    if (!this.ws) {
      // No socket (reconnecting): the slots pass unsent, with no burst afterwards.
      if (plan.rate > 0 && due > this.paced) {
        m.skippedSends.add(due - this.paced);
        this.paced = due;
      }
    } else {
      while (this.paced < due && this.inFlight.size < this.window() && this.allowed(now)) {
        this.paced++;
        this.sendOne();
      }
    }
    let next = plan.until;
    if (now < start) next = start;
    else if (this.inFlight.size >= this.window()) next = plan.until; // the next ack calls tick()
    else if (this.paced < due) next = this.allowedAt(now); // held back by the send limit
    else if (plan.rate > 0) next = start + (this.paced / plan.rate) * 1000;
    this.timer = setTimeout(() => this.tick(), Math.max(1, Math.min(next, plan.until) - Date.now()));
  }

  /**
   * Whether a send may go now: not within a `retry_after_ms` pause, and a token
   * of the client's own bucket (a little under WEFT_SEND_LIMIT per second and
   * WEFT_SEND_BURST), so a user never sends faster than the node allows. Takes the token.
   */
  allowed(now) {
    if (now < this.pausedUntil) return false;
    if (SEND_LIMIT <= 0) return true;
    this.tokens = Math.min(SEND_BURST, this.tokens + ((now - this.tokensAt) / 1000) * SEND_LIMIT);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** When allowed() may say yes again. */
  allowedAt(now) {
    if (now < this.pausedUntil) return this.pausedUntil;
    return now + Math.ceil(((1 - this.tokens) / SEND_LIMIT) * 1000);
  }

  /** Writes one `send`; its body starts with the send time (epoch ms). */
  sendOne(to) {
    const id = ++this.nextId;
    const now = Date.now();
    const frame = { type: 'send', id: id };
    const target = to || this.plan.to;
    if (this.chat !== null && !to) frame.chat = this.chat;
    else if (target.chat) frame.chat = target.chat;
    else frame.recipients = target.recipients;
    frame.body = `${now}:${this.tag}:${this.pad}`;
    frame.client_msg_id = `${this.tag}-${id}`;
    const text = JSON.stringify(frame);
    this.inFlight.set(id, { text: text, sentAt: now });
    m.sent.add(1);
    if (this.ws) this.ws.send(text);
  }

  /** Waits until every send is answered, or `deadline`; the unanswered ones count as unacked. */
  async settle(deadline) {
    await until(() => this.inFlight.size === 0, deadline);
    if (this.inFlight.size > 0) {
      m.unacked.add(this.inFlight.size);
      note('unacked', `${this.user}: ${this.inFlight.size} sends never acknowledged`);
      this.inFlight.clear();
    }
  }

  // ---- receiving

  onFrame(f) {
    switch (f.type) {
      case 'ack':
        this.onAck(f);
        break;
      case 'message':
        this.onMessage(f, 'live');
        break;
      case 'messages':
        this.onMessages(f);
        break;
      case 'error':
        this.onError(f);
        break;
      case 'presence':
      case 'typing':
      case 'receipt':
        break;
      default:
        error('unexpected_frame', JSON.stringify(f).slice(0, 100));
    }
  }

  onAck(f) {
    const entry = this.inFlight.get(f.id);
    if (!entry) {
      error('ack_of_nothing', `${this.user}: ${JSON.stringify(f)}`);
      return;
    }
    this.inFlight.delete(f.id);
    m.acked.add(1);
    m.ackLatency.add(Date.now() - entry.sentAt);
    if (typeof f.chat !== 'number' || typeof f.seq !== 'number') {
      error('ack_without_chat_or_seq', JSON.stringify(f));
      return;
    }
    this.acked.push([f.chat, f.seq]);
    this.hold(f.chat, f.seq);
    if (this.chat === null) this.chat = f.chat;
    else if (this.plan && f.chat !== this.chat) error('ack_names_another_chat', JSON.stringify(f));
    this.tick();
  }

  onError(f) {
    const entry = f.id !== undefined ? this.inFlight.get(f.id) : undefined;
    if (entry && (f.code === 'rate_limited' || f.code === 'in_flight' || /_unavailable$/.test(f.code || ''))) {
      // Retried with the same client_msg_id, which the node answers once.
      if (f.code === 'rate_limited') m.rateLimited.add(1);
      else m.retries.add(1);
      const wait = f.code === 'rate_limited' ? f.retry_after_ms || 100 : 500;
      // No send at all until then: each refusal counts towards the node's flood limit.
      this.pausedUntil = Math.max(this.pausedUntil, Date.now() + wait);
      setTimeout(() => {
        if (this.inFlight.get(f.id) === entry && this.ws && !this.stopped) this.ws.send(entry.text);
      }, wait);
      return;
    }
    error(f.code || 'error_without_code', `${this.user}: ${JSON.stringify(f)}`);
    if (entry) {
      this.inFlight.delete(f.id);
      m.unacked.add(1);
      this.tick();
    }
  }

  /** A message number now held (own ack or received); true if it is new. */
  hold(chat, seq) {
    const held = setOf(this.held, chat);
    if (held.has(seq)) return false;
    held.add(seq);
    let mark = this.mark[chat] || 0;
    const skipped = this.skipped[chat];
    while (held.has(mark + 1) || (skipped && skipped.has(mark + 1))) mark++;
    this.mark[chat] = mark;
    return true;
  }

  /**
   * A received message; `how` is live, catchup (a `hello` answer) or sync.
   * Live and catch-up copies may each arrive once per connection and only
   * above the resume position; sync answers are re-reads asked for.
   */
  onMessage(f, how) {
    const chat = f.chat;
    const seq = f.seq;
    if (typeof chat !== 'number' || typeof seq !== 'number') {
      error('message_without_chat_or_seq', JSON.stringify(f).slice(0, 100));
      return;
    }
    if (how !== 'sync') {
      const after = this.after[chat] || 0;
      const here = setOf(this.here, chat);
      if (seq <= after || here.has(seq)) {
        this.duplicates++;
        m.duplicates.add(1, { how: how });
        note('duplicate', `${this.user} got chat ${chat} seq ${seq} again (${how}, resumed after ${after})`);
        return;
      }
      here.add(seq);
    }
    if (!this.hold(chat, seq)) return;
    this.delivered++;
    m.delivered.add(1);
    if (how === 'catchup') m.resumed.add(1);
    if (how === 'live') {
      const stamp = parseInt(String(f.body || '').split(':')[0], 10);
      if (stamp >= this.measureFrom) m.latency.add(Math.max(0, Date.now() - stamp));
      if (this.gapSync && seq > (this.mark[chat] || 0) + 1) this.watchGap(chat, seq);
    }
  }

  onMessages(f) {
    const id = String(f.id || '');
    const items = f.items || [];
    const how = id.charAt(0) === 'h' ? 'catchup' : 'sync';
    for (const item of items) this.onMessage(item, how);
    const req = this.requests[id];
    delete this.requests[id];
    const last = items.length > 0 ? items[items.length - 1].seq : null;
    if (f.has_more && last !== null) {
      // More than one page missed: page on with sync (a gap keeps its end).
      this.sync(f.chat, last, req ? req.to : null);
      return;
    }
    if (req && req.to !== null && !f.has_more) {
      // Numbers of the gap that the store does not have: skipped for good (or
      // still being written, in which case they arrive live later and count then).
      const skipped = setOf(this.skipped, req.chat);
      const held = setOf(this.held, req.chat);
      for (let s = req.from + 1; s < req.to; s++) {
        if (!held.has(s)) skipped.add(s);
      }
      let mark = this.mark[req.chat] || 0;
      while (held.has(mark + 1) || skipped.has(mark + 1)) mark++;
      this.mark[req.chat] = mark;
    }
  }

  watchGap(chat, seq) {
    if (this.gapPending[chat]) return;
    this.gapPending[chat] = true;
    setTimeout(() => {
      this.gapPending[chat] = false;
      const mark = this.mark[chat] || 0;
      if (this.stopped || !this.ws || mark >= seq - 1) return;
      m.gapSyncs.add(1);
      this.sync(chat, mark, seq);
    }, GAP_WAIT_MS);
  }

  /** `sync` from `after`; `to` is the end of the gap it fills (null: a catch-up page). */
  sync(chat, after, to) {
    if (!this.ws) return;
    const id = `g${++this.syncSerial}`;
    this.requests[id] = { chat: chat, from: after, to: to };
    this.ws.send(JSON.stringify({ type: 'sync', id: id, chat: chat, after: after, limit: 500 }));
  }

  /** Numbers of `want` (a Set) this client does not hold in `chat`. */
  missing(chat, want) {
    const held = this.held[chat] || new Set();
    let n = 0;
    for (const s of want) if (!held.has(s)) n++;
    return n;
  }

  /** Numbers it holds in `chat` that are not in `want`. */
  extra(chat, want) {
    const held = this.held[chat] || new Set();
    let n = 0;
    for (const s of held) if (!want.has(s)) n++;
    return n;
  }
}

/** Opens every client's first connection, `concurrency` at a time; how many got a welcome. */
export async function connectAll(clients, concurrency) {
  const ok = await pool(clients, concurrency, (c) => c.connect());
  return ok.filter((x) => x).length;
}

/** Closes every client. */
export async function closeAll(clients) {
  await Promise.all(clients.map((c) => c.close()));
}

/** Compares what `receivers` hold of `chat` with the stored numbers; counts lost and unexpected. */
export function tally(receivers, chat, stored, kind) {
  let lost = 0;
  let extra = 0;
  for (const r of receivers) {
    const miss = r.missing(chat, stored);
    const more = r.extra(chat, stored);
    if (miss > 0) note('lost', `${r.user} misses ${miss} of the ${stored.size} messages of chat ${chat}`);
    if (more > 0) note('unexpected', `${r.user} holds ${more} numbers of chat ${chat} that are not stored`);
    lost += miss;
    extra += more;
  }
  m.lost.add(lost, { kind: kind || 'not_delivered' });
  m.unexpected.add(extra);
  return lost + extra;
}

/** Acked sends of `senders` to `chat` that the store does not have. */
export function ackedNotStored(senders, chat, stored) {
  let n = 0;
  for (const s of senders) {
    for (const a of s.acked) if (a[0] === chat && !stored.has(a[1])) n++;
  }
  if (n > 0) note('acked_not_stored', `${n} acknowledged sends to chat ${chat} are not stored`);
  m.lost.add(n, { kind: 'acked_not_stored' });
  return n;
}

/** Runs a scenario body; an exception counts as an error (so the thresholds fail) and is logged. */
export async function guarded(name, fn) {
  try {
    await fn();
  } catch (e) {
    error('exception', `${name}: ${e && e.stack ? e.stack : e}`);
  } finally {
    touchCounters();
  }
}
