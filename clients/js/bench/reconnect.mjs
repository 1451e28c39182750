// The client's reconnect-to-caught-up time after a node restart.
//
//   node --experimental-websocket clients/js/bench/reconnect.mjs [runs] [SIGTERM|SIGKILL]
//
// One node on the embedded store (WEFT_BIN, else target/release/weft, else
// target/debug/weft), a chat with 1,000 messages, one client tracking it with
// the default options. Each run restarts the node (same port and data dir);
// as soon as it is ready, 50 messages are posted over REST (they happen while
// the client is away). Measured per run:
//   - restart: the signal to the node answering /readyz again;
//   - back → caught up: /readyz answering to the client holding every message
//     (the 50 included) with its `caught_up` fired: its backoff wait, the
//     handshake, `hello` and the catch-up;
//   - total: the client's disconnect to caught up.
// Prints each run and the medians. Runs on loopback only, bounded in count.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { WeftClient } from '../dist/index.js';

const runs = Number(process.argv[2] ?? 7);
const signal = process.argv[3] ?? 'SIGTERM';
if (!process.env.WEFT_BIN) {
  const { REPO } = await import('../test/helpers.mjs');
  const release = join(REPO, 'target/release/weft');
  if (existsSync(release)) process.env.WEFT_BIN = release;
}
const { singleNode, newApp, until } = await import('../test/helpers.mjs');

const node = await singleNode();
try {
  const { rest } = await newApp(node.base);
  const chat = (await rest.createChat({ created_by: 'alice' })).number;
  await rest.putMember(chat, 'bob');
  for (let i = 0; i < 1000; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => rest.postMessage(chat, { body: `history ${i + j}`, sender: 'alice' })));
  }
  const client = new WeftClient({
    url: node.ws,
    getToken: async () => (await rest.createUserToken('bob')).token,
    positions: { [chat]: 0 },
  });
  let caughtAt = 0;
  client.on('caught_up', () => (caughtAt = performance.now()));
  let downAt = 0;
  client.on('disconnected', () => (downAt ||= performance.now()));
  await client.connect();
  await until('the history', () => client.position(chat) === 1000 && caughtAt > 0, 60_000);

  const rows = [];
  let expected = 1000;
  for (let r = 1; r <= runs; r++) {
    caughtAt = 0;
    downAt = 0;
    const t0 = performance.now();
    await node.stop(signal);
    await node.start();
    const ready = performance.now();
    // Messages the client misses: posted while it is away (or reconnecting).
    await Promise.all(Array.from({ length: 50 }, (_, j) => rest.postMessage(chat, { body: `run ${r} #${j}`, sender: 'alice' })));
    expected += 50;
    await until('caught up', () => caughtAt > 0 && client.position(chat) === expected, 60_000, 1);
    const done = Math.max(caughtAt, performance.now() - 1);
    const row = { run: r, restart_ms: ready - t0, back_to_caught_up_ms: done - ready, total_ms: done - downAt };
    rows.push(row);
    console.log(
      `run ${r}: restart ${row.restart_ms.toFixed(0)} ms, back → caught up ${row.back_to_caught_up_ms.toFixed(0)} ms, disconnect → caught up ${row.total_ms.toFixed(0)} ms`,
    );
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  console.log(
    `median of ${runs} (${signal}, ${process.env.WEFT_BIN ?? 'target/debug/weft'}): restart ${median(rows.map((x) => x.restart_ms)).toFixed(0)} ms, ` +
      `back → caught up ${median(rows.map((x) => x.back_to_caught_up_ms)).toFixed(0)} ms, ` +
      `disconnect → caught up ${median(rows.map((x) => x.total_ms)).toFixed(0)} ms`,
  );
  client.close();
} finally {
  await node.dispose();
}
