// dm: WEFT_PAIRS pairs of users, each pair in its own direct chat. Each side first sends
// with `recipients: [peer]` (the node finds or creates the pair's direct chat; both sides
// must be told the same number), then both sides send to that chat, WEFT_RATE messages
// per second over all users. Measures send → delivery latency and checks by message
// number that each side got every acknowledged message of its peer exactly once.
//
//   k6 run -e WEFT_URL=http://127.0.0.1:8080 -e WEFT_PAIRS=500 -e WEFT_RATE=500 dm.js
//
// Settings: WEFT_PAIRS (5), WEFT_RATE (10 messages/s in all; 0 = as fast as the acks
// allow), WEFT_WINDOW (32), WEFT_DURATION (5 s), WEFT_WARMUP (0 s), WEFT_DRAIN (10 s),
// WEFT_VUS (10 at most; both sides of a pair are in one VU), WEFT_BODY_BYTES (64),
// WEFT_P95_MS (off), WEFT_URL / WEFT_URLS (the two sides of a pair on different nodes when
// there are several), WEFT_ADMIN_KEY. Per-user send limit: see fanout.js (node default
// 20/s, burst 40).

import { check } from 'k6';
import * as w from './lib/weft.js';

const cfg = w.commonConfig();
const PAIRS = w.int('WEFT_PAIRS', 5, 1);
const RATE = w.num('WEFT_RATE', 10, 0);
const VUS = Math.min(w.int('WEFT_VUS', Math.min(PAIRS, 10), 1), PAIRS);
if (RATE > 0) w.warnRate(cfg, RATE / (2 * PAIRS));

export const options = w.scenarioOptions(
  'dm',
  VUS,
  cfg.prepareMs + cfg.warmupMs + cfg.durationMs + cfg.drainMs,
  w.thresholds(true),
);

export function setup() {
  return { app: w.createApp(cfg, 'k6 dm'), run: Date.now().toString(36) };
}

export default async function (data) {
  await w.guarded('dm', async () => {
    const { index, mine } = w.share(PAIRS, VUS);
    const rest = new w.Rest(cfg.urls, data.app);
    const users = [];
    for (const p of mine) users.push(`a${p}`, `b${p}`);
    const ttl = (cfg.prepareMs + cfg.durationMs + cfg.drainMs) / 1000 + 3600;
    const jwts = await w.tokens(rest, users, null, ttl);
    const k = cfg.urls.length;
    const clients = users.map(
      (user, n) =>
        new w.Client({
          user: user,
          jwt: jwts[n],
          urls: cfg.urls,
          urlAt: mine[n >> 1] + (n & 1), // side b on the node after side a's
          tag: `${user}-${data.run}`,
          bodyBytes: cfg.bodyBytes,
        }),
    );
    await w.connectAll(clients, cfg.connectConcurrency);

    // Each side finds the pair's direct chat: one `recipients` send each, at once.
    clients.forEach((c, n) => {
      if (c.ws) c.sendOne({ recipients: [users[n ^ 1]] });
    });
    await w.until(() => clients.every((c) => !c.ws || c.inFlight.size === 0), Date.now() + cfg.prepareMs);
    for (let n = 0; n < clients.length; n += 2) {
      const a = clients[n];
      const b = clients[n + 1];
      const same = a.chat !== null && a.chat === b.chat;
      check(same, { 'direct chat: one number from both sides': (ok) => ok });
      if (!same) console.warn(`weft: ${a.user} and ${b.user} were told chats ${a.chat} and ${b.chat}`);
    }

    const from = Date.now() + 100;
    const stop = from + cfg.warmupMs + cfg.durationMs;
    const each = RATE / (2 * PAIRS);
    const period = each > 0 ? Math.min(1000 / each, 1000) : 0;
    clients.forEach((c, n) => {
      c.measureFrom = from + cfg.warmupMs;
      if (c.chat === null) return;
      c.startSending({
        to: { chat: c.chat },
        rate: each,
        window: cfg.window,
        from: from,
        until: stop,
        offsetMs: (period * (2 * mine[n >> 1] + (n & 1))) / (2 * PAIRS),
      });
    });
    await w.delay(stop - Date.now());
    await Promise.all(clients.map((c) => c.settle(stop + cfg.drainMs)));

    // Each side must hold every acknowledged send of its peer (and its own, from the acks).
    const want = clients.map((c, n) => {
      const s = new Set();
      for (const a of clients[n].acked.concat(clients[n ^ 1].acked)) if (a[0] === c.chat) s.add(a[1]);
      return s;
    });
    await w.until(() => clients.every((c, n) => c.chat === null || c.missing(c.chat, want[n]) === 0), stop + cfg.drainMs, 100);
    let acked = 0;
    clients.forEach((c, n) => {
      acked += c.acked.length;
      if (c.chat !== null) w.tally([c], c.chat, want[n]);
    });
    console.log(`weft: VU ${index + 1}: ${mine.length} pairs, ${acked} sends acknowledged, ${k} node URL(s)`);
    await w.closeAll(clients);
  });
}
