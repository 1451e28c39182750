// Three live nodes on Redis + Cassandra: under steady traffic the node the
// sender and a receiver are on is killed. Both move to another node of their
// list; then the sender's new node drains (SIGTERM: 1012) and she moves on
// again. Every acked message is stored once, and each receiver sees exactly
// the stored messages, once, in order. Needs the services (scripts/test-js.sh
// exports them); fails, never skips, without them.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';

import { threeNodes, newApp, clientFor, until, seqs, history, sleep } from './helpers.mjs';

let trio;
before(async () => {
  trio = await threeNodes({ WEFT_GATEWAY_SEND_RATE_PER_SEC: '500', WEFT_GATEWAY_SEND_BURST: '500' });
});
after(() => trio?.dispose());

test('the cluster loses a node, then drains another: clients move on, nothing lost or duplicated', async () => {
  const [a, b, c] = trio.nodes;
  const { rest } = await newApp(c.base);
  const chat = (await rest.createChat({ created_by: 'alice' })).number;
  for (const u of ['bob', 'dave']) await rest.putMember(chat, u);
  // alice sends and bob receives on node a (then b or c); dave is on c throughout.
  const alice = clientFor(rest, 'alice', [a.ws, b.ws, c.ws], { client: { positions: { [chat]: 0 } } });
  const bob = clientFor(rest, 'bob', [a.ws, c.ws, b.ws], { client: { positions: { [chat]: 0 } } });
  const dave = clientFor(rest, 'dave', [c.ws, b.ws], { client: { positions: { [chat]: 0 } } });
  const nodesSeen = { alice: [], bob: [] };
  const aliceCloses = [];
  alice.on('disconnected', (d) => aliceCloses.push(d.code));
  const refusals = [];
  alice.on('frame', (f) => f.type === 'error' && refusals.push(f.code));
  alice.on('connected', (w) => nodesSeen.alice.push(w.node));
  bob.on('connected', (w) => nodesSeen.bob.push(w.node));
  try {
    await Promise.all([alice.connect(), bob.connect(), dave.connect()]);
    assert.deepEqual([nodesSeen.alice[0], nodesSeen.bob[0]], ['node-a', 'node-a']);

    // Steady traffic: a send every 10 ms, not waiting for acks; node a is killed in the middle.
    const n = 150;
    const acks = [];
    let pendingAtKill = 0;
    let killedAt = 0;
    alice.on('connected', () => killedAt && console.log(`# alice connected ${Date.now() - killedAt} ms after the kill`));
    bob.on('caught_up', () => killedAt && console.log(`# bob caught up ${Date.now() - killedAt} ms after the kill`));
    for (let i = 1; i <= n; i++) {
      if (i === 50) await until('traffic flowing before the kill', () => seqs(bob, chat).length >= 20);
      acks.push(alice.send({ chat, body: `m${i}` }));
      if (i === 60) {
        // Sends 51..60 went out back to back: most are in flight now.
        a.kill();
        pendingAtKill = alice.pendingSends;
        killedAt = Date.now();
      }
      if (i < 50 || i > 60) await sleep(10);
    }
    const acked = await Promise.all(acks);
    console.log(`# all acked ${Date.now() - killedAt} ms after the kill`);
    console.log(`# sends unacked when node a was killed: ${pendingAtKill}; refusals retried: ${JSON.stringify(refusals)}`);
    assert.equal(new Set(acked.map((x) => x.seq)).size, n, 'every send acked, each with its own number');
    assert.ok(nodesSeen.alice.length >= 2 && nodesSeen.alice.at(-1) !== 'node-a', `alice moved: ${nodesSeen.alice}`);
    assert.ok(nodesSeen.bob.length >= 2 && nodesSeen.bob.at(-1) !== 'node-a', `bob moved: ${nodesSeen.bob}`);

    const stored = await history(rest, chat);
    assert.equal(stored.length, n, 'each stored once');
    assert.deepEqual(
      stored.map((m) => m.body).sort(),
      Array.from({ length: n }, (_, i) => `m${i + 1}`).sort(),
      'every body once',
    );
    const numbers = stored.map((m) => m.number);
    assert.deepEqual(acked.map((x) => x.seq).sort((x, y) => x - y), numbers, 'the acks name the stored numbers');
    for (const [who, client] of [['bob', bob], ['dave', dave], ['alice', alice]]) {
      await until(`${who} has every message`, () => seqs(client, chat).length >= n, 60_000);
      assert.deepEqual(seqs(client, chat), numbers, `${who}: the stored messages, once each, in order`);
    }

    // Then alice's node drains (SIGTERM): her session closes with 1012 and she moves on at once.
    assert.equal(nodesSeen.alice.at(-1), 'node-b');
    const more = [];
    let drained;
    for (let i = n + 1; i <= n + 50; i++) {
      more.push(alice.send({ chat, body: `m${i}` }));
      if (i === n + 20) drained = b.stop('SIGTERM');
      await sleep(10);
    }
    await Promise.all(more);
    await drained;
    assert.ok(aliceCloses.includes(1012), `a drain closes with 1012 (${aliceCloses})`);
    assert.equal(nodesSeen.alice.at(-1), 'node-c');
    const all = (await history(rest, chat)).map((m) => m.number);
    assert.equal(all.length, n + 50, 'each stored once');
    for (const [who, client] of [['bob', bob], ['dave', dave], ['alice', alice]]) {
      await until(`${who} has every message`, () => seqs(client, chat).length >= n + 50, 60_000);
      assert.deepEqual(seqs(client, chat), all, `${who}: the stored messages, once each, in order`);
    }
  } finally {
    alice.close();
    bob.close();
    dave.close();
  }
});
