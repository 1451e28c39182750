// storm: WEFT_CLIENTS clients (one socket each) spread over the nodes of WEFT_URLS, in
// WEFT_CHATS chats (client i in chat i % WEFT_CHATS), every client sending to its chat,
// WEFT_RATE messages per second in all, for WEFT_DURATION seconds. While it runs, YOU
// stop or kill one node (k6 cannot): `kill -TERM <pid>` (the node drains, closing its
// sockets with 1012), `kill -KILL <pid>`, or `kubectl delete pod …`.
//
// The clients follow the protocol: when their socket closes or breaks they reconnect to
// the next URL (backing off, for WEFT_RECONNECT seconds at most), `hello` with the last
// number held without a gap in each chat, and resend their unacknowledged sends with the
// same client_msg_id (the node answers each once); a gap in `seq` still open after 500 ms
// is filled with `sync`. At the end every client must hold every stored message of its
// chat, none received twice on one connection (live or catch-up) nor at or below a resume
// position, and every acknowledged send must be stored.
//
//   k6 run -e WEFT_URLS=http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//          -e WEFT_ADMIN_KEY=... -e WEFT_CLIENTS=300 -e WEFT_CHATS=10 -e WEFT_RATE=50 \
//          -e WEFT_DURATION=60 -e WEFT_EXPECT_RECONNECTS=1 storm.js
//   # ...and some seconds in: kill -KILL $(cat .cluster/node-3.pid)
//
// Settings: WEFT_CLIENTS (10), WEFT_CHATS (1), WEFT_RATE (5 messages/s in all), WEFT_WINDOW
// (32), WEFT_DURATION (20 s), WEFT_RECONNECT (30 s), WEFT_DRAIN (10 s, after the sending
// and any reconnect), WEFT_EXPECT_RECONNECTS (0; 1 adds the threshold that some socket was
// moved, i.e. a node did go down), WEFT_VUS (10 at most), WEFT_URL / WEFT_URLS, WEFT_ADMIN_KEY.
// With one node, restart it on the same data during the run: the clients wait for it.
// Per-user send limit: see fanout.js (node default 20/s, burst 40).

import { check } from 'k6';
import * as w from './lib/weft.js';

const cfg = w.commonConfig();
cfg.durationMs = w.num('WEFT_DURATION', 20, 0.1) * 1000;
const CLIENTS = w.int('WEFT_CLIENTS', 10, 1);
const CHATS = Math.min(w.int('WEFT_CHATS', 1, 1), CLIENTS);
const RATE = w.num('WEFT_RATE', 5, 0);
const RECONNECT_MS = w.num('WEFT_RECONNECT', 30, 1) * 1000;
const VUS = Math.min(w.int('WEFT_VUS', Math.min(CLIENTS, 10), 1), CLIENTS);
if (RATE > 0) w.warnRate(cfg, RATE / CLIENTS);

const extra = { weft_reconnect_failures: ['count==0'] };
if (w.str('WEFT_EXPECT_RECONNECTS', '0') === '1') extra.weft_reconnects = ['count>0'];

export const options = w.scenarioOptions(
  'storm',
  VUS,
  2 * cfg.prepareMs + cfg.warmupMs + cfg.durationMs + RECONNECT_MS + cfg.drainMs,
  w.thresholds(true, extra),
);

export function setup() {
  const app = w.createApp(cfg, 'k6 storm');
  const chats = w.createChats(cfg, app, CHATS + 2);
  return { app: app, chats: chats.slice(0, CHATS), ready: chats[CHATS], done: chats[CHATS + 1], run: Date.now().toString(36) };
}

export default async function (data) {
  await w.guarded('storm', async () => {
    const { index, mine } = w.share(CLIENTS, VUS);
    const rest = new w.Rest(cfg.urls, data.app, index);
    const users = mine.map((i) => `s${i}`);
    const chatOf = mine.map((i) => data.chats[i % CHATS]);
    const ttl = (2 * cfg.prepareMs + cfg.durationMs + RECONNECT_MS + cfg.drainMs) / 1000 + 3600;
    const jwts = await w.tokens(rest, users, chatOf, ttl);
    const clients = users.map(
      (user, k) =>
        new w.Client({
          user: user,
          jwt: jwts[k],
          urls: cfg.urls,
          urlAt: mine[k],
          tag: `${user}-${data.run}`,
          chats: [chatOf[k]],
          reconnect: true,
          reconnectMs: RECONNECT_MS,
          gapSync: true,
          bodyBytes: cfg.bodyBytes,
        }),
    );
    await w.connectAll(clients, cfg.connectConcurrency);
    const ready = await rest.barrier(data.ready, VUS, Date.now() + cfg.prepareMs);
    check(ready, { 'every VU connected in time': (ok) => ok });

    const from = Date.now() + 100;
    const stop = from + cfg.warmupMs + cfg.durationMs;
    const each = RATE / CLIENTS;
    const period = each > 0 ? Math.min(1000 / each, 1000) : 0;
    clients.forEach((c, k) => {
      c.measureFrom = from + cfg.warmupMs;
      if (c.ws === null) return;
      c.startSending({
        to: { chat: chatOf[k] },
        rate: each,
        window: cfg.window,
        from: from,
        until: stop,
        offsetMs: (period * mine[k]) / CLIENTS,
      });
    });
    // Progress every 5 s, so whoever kills the node sees the clients move.
    for (let at = from + 5000; at < stop; at += 5000) {
      await w.delay(at - Date.now());
      const up = clients.filter((c) => c.ws !== null).length;
      let moved = 0;
      for (const c of clients) moved += Math.max(0, c.connections - 1);
      console.log(`weft: VU ${index + 1}: ${Math.round((Date.now() - from) / 1000)} s: ${up} of ${clients.length} connected, ${moved} reconnects so far`);
    }
    await w.delay(stop - Date.now());

    // Sends still pending may wait for a reconnect; then every VU must be done.
    await Promise.all(clients.map((c) => c.settle(stop + RECONNECT_MS + cfg.drainMs)));
    const done = await rest.barrier(data.done, VUS, stop + RECONNECT_MS + cfg.drainMs + cfg.prepareMs);
    check(done, { 'every VU finished sending in time': (ok) => ok });

    const mineChats = [];
    for (const c of chatOf) if (mineChats.indexOf(c) < 0) mineChats.push(c);
    const stored = {};
    for (const chat of mineChats) stored[chat] = await rest.stored(chat);
    const deadline = Date.now() + RECONNECT_MS + cfg.drainMs;
    await w.until(() => clients.every((c, k) => c.missing(chatOf[k], stored[chatOf[k]]) === 0), deadline, 100);
    for (const chat of mineChats) {
      const members = clients.filter((c, k) => chatOf[k] === chat);
      w.tally(members, chat, stored[chat]);
      w.ackedNotStored(members, chat, stored[chat]);
    }
    const up = clients.filter((c) => c.ws !== null).length;
    check(up, { 'every client connected at the end': (n) => n === clients.length });
    let moved = 0;
    let acked = 0;
    for (const c of clients) {
      moved += Math.max(0, c.connections - 1);
      acked += c.acked.length;
    }
    console.log(`weft: VU ${index + 1}: ${clients.length} clients, ${moved} reconnects, ${acked} sends acknowledged`);
    await w.closeAll(clients);
  });
}
