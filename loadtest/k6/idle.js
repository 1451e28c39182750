// idle: open WEFT_CONNECTIONS WebSockets (one user each), check that every one
// gets its `welcome`, hold them all open for WEFT_DURATION seconds, and check
// that the node closed none of them.
//
//   k6 run -e WEFT_URL=http://127.0.0.1:8080 -e WEFT_CONNECTIONS=1000 -e WEFT_DURATION=60 idle.js
//
// Settings (environment or -e): WEFT_CONNECTIONS (20), WEFT_VUS (10 at most; each VU
// holds its share of the sockets), WEFT_DURATION (5 s held once every VU has its
// sockets open), WEFT_PREPARE (60 s at most for that), WEFT_CONNECT_CONCURRENCY (50
// handshakes in flight per VU), WEFT_URL / WEFT_URLS (sockets spread over the nodes in
// turn), WEFT_ADMIN_KEY. The node pings a quiet socket every 20 s and k6 answers the
// pings, so a hold longer than the node's idle timeout (60 s) keeps every socket.

import { check } from 'k6';
import * as w from './lib/weft.js';

const cfg = w.commonConfig();
const CONNECTIONS = w.int('WEFT_CONNECTIONS', 20, 1);
const VUS = Math.min(w.int('WEFT_VUS', Math.min(CONNECTIONS, 10), 1), CONNECTIONS);

export const options = w.scenarioOptions(
  'idle',
  VUS,
  cfg.prepareMs + cfg.durationMs,
  w.thresholds(false, {
    weft_ws_connect_failures: ['count==0'],
    weft_ws_dropped: ['count==0'],
    weft_ws_welcomed: [`count>=${CONNECTIONS}`],
  }),
);

export function setup() {
  const app = w.createApp(cfg, 'k6 idle');
  const chats = w.createChats(cfg, app, 1);
  return { app: app, ready: chats[0] };
}

export default async function (data) {
  await w.guarded('idle', async () => {
    const { mine } = w.share(CONNECTIONS, VUS);
    const rest = new w.Rest(cfg.urls, data.app);
    const users = mine.map((i) => `idle-${i}`);
    const jwts = await w.tokens(rest, users, null, (cfg.prepareMs + cfg.durationMs) / 1000 + 3600);
    const clients = users.map(
      (user, k) => new w.Client({ user: user, jwt: jwts[k], urls: cfg.urls, urlAt: mine[k], bodyBytes: cfg.bodyBytes }),
    );
    const t0 = Date.now();
    const open = await w.connectAll(clients, cfg.connectConcurrency);
    console.log(`weft: VU ${w.share(CONNECTIONS, VUS).index + 1}: ${open} of ${clients.length} sockets open in ${Date.now() - t0} ms`);

    const ready = await rest.barrier(data.ready, VUS, Date.now() + cfg.prepareMs);
    check(ready, { 'every VU connected in time': (ok) => ok });
    await w.delay(cfg.durationMs);

    const still = clients.filter((c) => c.ws !== null).length;
    check(still, { 'every socket still open after the hold': (n) => n === clients.length });
    await w.closeAll(clients);
  });
}
