// A client survives its node being restarted (same port, same data dir):
// killed (SIGKILL: close 1006) or drained (SIGTERM: close 1012). Messages
// sent while it was away, by another client and over REST, come once, in order.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { singleNode, newApp, clientFor, until, seqs, bodies, tcpProxy, history, assertContiguous } from './helpers.mjs';

const node = await singleNode();
after(() => node.dispose());

for (const signal of ['SIGKILL', 'SIGTERM']) {
  test(`a client survives the node restarting (${signal})`, async () => {
    const { rest } = await newApp(node.base);
    const chat = (await rest.createChat({ created_by: 'alice' })).number;
    await rest.putMember(chat, 'bob');
    // bob goes through a proxy, so that he stays away until the others have sent.
    const proxy = await tcpProxy(node.port);
    const alice = clientFor(rest, 'alice', node.ws, { client: { positions: { [chat]: 0 } } });
    const bob = clientFor(rest, 'bob', proxy.url, { client: { positions: { [chat]: 0 } } });
    const aliceCloses = [];
    alice.on('disconnected', (d) => aliceCloses.push(d.code));
    try {
      await alice.connect();
      await bob.connect();
      for (let i = 1; i <= 10; i++) await alice.send({ chat, body: `m${i}` });
      await until('bob has 10', () => seqs(bob, chat).length === 10);

      const aliceDown = alice.waitFor('disconnected');
      const bobDown = bob.waitFor('disconnected');
      proxy.blocked = true;
      await node.stop(signal);
      await Promise.all([aliceDown, bobDown]);
      // Sends made while the node is down wait in the client.
      const queued = [11, 12, 13, 14, 15].map((i) => alice.send({ chat, body: `m${i}` }));

      await node.start();
      const acks = await Promise.all(queued);
      assert.deepEqual(acks.map((a) => a.seq), [11, 12, 13, 14, 15]);
      for (let i = 16; i <= 20; i++) await rest.postMessage(chat, { body: `m${i}`, sender: 'carol' }, { idempotencyKey: `r${i}` });
      assert.equal(seqs(bob, chat).length, 10, 'bob is still away');

      const caught = bob.waitFor('caught_up');
      proxy.blocked = false;
      await caught;
      await alice.send({ chat, body: 'm21' });
      await until('bob has 21', () => seqs(bob, chat).length === 21);
      assertContiguous(assert, seqs(bob, chat), 21, 'bob: each once, in order');
      assert.deepEqual(bodies(bob, chat), Array.from({ length: 21 }, (_, i) => `m${i + 1}`));
      await until('alice has 21', () => seqs(alice, chat).length === 21);
      assertContiguous(assert, seqs(alice, chat), 21, 'alice: each once, in order');
      const stored = await history(rest, chat);
      assert.deepEqual(stored.map((m) => m.number), Array.from({ length: 21 }, (_, i) => i + 1), 'stored once each');
      if (signal === 'SIGTERM') assert.equal(aliceCloses[0], 1012, 'a drain closes with 1012');
    } finally {
      alice.close();
      bob.close();
      proxy.close();
    }
  });
}
