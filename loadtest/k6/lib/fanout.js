// The fan-out run shared by fanout.js and cluster.js: one chat of
// WEFT_MEMBERS members, each with a receiving socket; the first WEFT_SENDERS
// members also have a second socket that sends to the chat, WEFT_RATE
// messages per second over all senders. Every receiving socket must get every
// stored message once: lost, duplicated and unexpected numbers are counted
// against the chat's stored messages (REST), and every acknowledged send must
// be stored.
//
// VUs: member i belongs to VU i % WEFT_VUS. The VUs meet at two barriers
// (members of two helper chats): every socket open before sending starts, every
// sender finished before the receivers are compared with the store.

import { check } from 'k6';
import * as w from './weft.js';

/** The settings; `cluster` spreads senders and receivers over different nodes. */
export function fanoutConfig(cluster) {
  const cfg = w.commonConfig();
  cfg.cluster = cluster;
  cfg.members = w.int('WEFT_MEMBERS', 10, 1);
  cfg.senders = w.int('WEFT_SENDERS', 1, 1);
  if (cfg.senders > cfg.members) throw new Error('WEFT_SENDERS must not exceed WEFT_MEMBERS');
  cfg.rate = w.num('WEFT_RATE', 5, 0);
  cfg.vus = Math.min(w.int('WEFT_VUS', Math.min(cfg.members, 10), 1), cfg.members);
  if (cluster && cfg.urls.length < 2) {
    throw new Error('cluster needs two node URLs at least: WEFT_URLS=http://node-a:8080,http://node-b:8080');
  }
  // The check that receivers and senders sit on different nodes needs distinct URLs.
  const distinct = {};
  for (const u of cfg.urls) distinct[u] = true;
  cfg.checkNodes = cluster && Object.keys(distinct).length === cfg.urls.length && w.str('WEFT_CHECK_NODES', '1') !== '0';
  if (cfg.rate > 0) w.warnRate(cfg, cfg.rate / cfg.senders);
  return cfg;
}

export function fanoutOptions(cfg, name) {
  return w.scenarioOptions(
    name,
    cfg.vus,
    2 * cfg.prepareMs + cfg.warmupMs + cfg.durationMs + cfg.drainMs,
    w.thresholds(true),
  );
}

export function fanoutSetup(cfg, name) {
  const app = w.createApp(cfg, name);
  const chats = w.createChats(cfg, app, 3);
  return { app: app, chat: chats[0], ready: chats[1], done: chats[2], run: Date.now().toString(36) };
}

/** Node URL of member i's receiving socket, and of sender j's socket. */
function receiverUrlAt(cfg, i) {
  // cluster: senders on the first node, receivers on the others in turn.
  return cfg.cluster ? 1 + (i % (cfg.urls.length - 1)) : i % cfg.urls.length;
}

function senderUrlAt(cfg, j) {
  return cfg.cluster ? 0 : j % cfg.urls.length;
}

export async function fanoutRun(cfg, data) {
  const { index, mine } = w.share(cfg.members, cfg.vus);
  const rest = new w.Rest(cfg.urls, data.app);
  const chat = data.chat;
  const users = mine.map((i) => `m${i}`);
  const ttl = (2 * cfg.prepareMs + cfg.durationMs + cfg.drainMs) / 1000 + 3600;
  const jwts = await w.tokens(rest, users, users.map(() => chat), ttl);

  const receivers = mine.map(
    (i, k) =>
      new w.Client({ user: users[k], jwt: jwts[k], urls: cfg.urls, urlAt: receiverUrlAt(cfg, i), bodyBytes: cfg.bodyBytes }),
  );
  const senders = [];
  const senderIndex = [];
  mine.forEach((i, k) => {
    if (i < cfg.senders) {
      senders.push(
        new w.Client({
          user: users[k],
          jwt: jwts[k],
          urls: cfg.urls,
          urlAt: senderUrlAt(cfg, i),
          tag: `${users[k]}-${data.run}`,
          bodyBytes: cfg.bodyBytes,
        }),
      );
      senderIndex.push(i);
    }
  });
  const all = receivers.concat(senders);
  await w.connectAll(all, cfg.connectConcurrency);

  if (cfg.checkNodes && receivers.length > 0) {
    // The node of the senders' URL, seen through a short-lived socket of our own.
    const probe = new w.Client({ user: users[0], jwt: jwts[0], urls: cfg.urls, urlAt: 0 });
    const seen = (await probe.connect()) ? probe.node : null;
    await probe.close();
    const apart = receivers.filter((r) => r.node !== null && r.node !== seen).length;
    check(apart, { 'cluster: receivers on other nodes than the senders': (n) => n === receivers.length });
    if (apart < receivers.length) {
      console.warn(`weft: senders' node ${seen}; receivers' nodes ${receivers.map((r) => r.node).join(' ')}`);
    }
  }
  const nodes = {};
  for (const c of all) if (c.node) nodes[c.node] = (nodes[c.node] || 0) + 1;
  console.log(`weft: VU ${index + 1}: ${receivers.length} receivers, ${senders.length} senders; sockets per node ${JSON.stringify(nodes)}`);

  const ready = await rest.barrier(data.ready, cfg.vus, Date.now() + cfg.prepareMs);
  check(ready, { 'every VU connected in time': (ok) => ok });

  const from = Date.now() + 100;
  const stop = from + cfg.warmupMs + cfg.durationMs;
  for (const c of all) c.measureFrom = from + cfg.warmupMs;
  const each = cfg.rate / cfg.senders;
  const period = each > 0 ? Math.min(1000 / each, 1000) : 0;
  senders.forEach((s, k) => {
    s.startSending({
      to: { chat: chat },
      rate: each,
      window: cfg.window,
      from: from,
      until: stop,
      offsetMs: (period * senderIndex[k]) / cfg.senders,
    });
  });
  await w.delay(stop - Date.now());
  await Promise.all(senders.map((s) => s.settle(stop + cfg.drainMs)));

  // Every VU's senders are done: the store now holds every message of the run.
  const done = await rest.barrier(data.done, cfg.vus, stop + cfg.drainMs + cfg.prepareMs);
  check(done, { 'every VU finished sending in time': (ok) => ok });
  const stored = await rest.stored(chat);
  await w.until(() => receivers.every((r) => r.missing(chat, stored) === 0), stop + cfg.drainMs, 100);
  w.tally(receivers, chat, stored);
  w.ackedNotStored(senders, chat, stored);
  let acked = 0;
  for (const s of senders) acked += s.acked.length;
  console.log(`weft: VU ${index + 1}: ${acked} sends acknowledged; the chat holds ${stored.size} messages`);
  await w.closeAll(all);
}
