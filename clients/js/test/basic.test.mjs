import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { WeftError, WeftHttpError } from '../dist/index.js';
import { singleNode, newApp, clientFor, until, bodies, seqs, assertContiguous } from './helpers.mjs';

const node = await singleNode();
after(() => node.dispose());

test('send and receive, in order, each once; own messages echoed from the ack', async () => {
  const { rest } = await newApp(node.base);
  const chat = (await rest.createChat({ created_by: 'alice' })).number;
  await rest.putMember(chat, 'bob');
  const alice = clientFor(rest, 'alice', node.ws, { client: { positions: { [chat]: 0 } } });
  const bob = clientFor(rest, 'bob', node.ws, { client: { positions: { [chat]: 0 } } });
  try {
    const welcome = await alice.connect();
    assert.equal(welcome.user, 'alice');
    await bob.connect();
    const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => alice.send({ chat, body: `m${i + 1}` })));
    assert.deepEqual(acks.map((a) => a.seq).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1));
    await until('bob has 30', () => seqs(bob, chat).length >= 30);
    await until('alice has 30', () => seqs(alice, chat).length >= 30);
    assertContiguous(assert, seqs(bob, chat), 30, 'bob in order, once');
    assertContiguous(assert, seqs(alice, chat), 30, 'alice (own echo) in order, once');
    assert.deepEqual(bodies(bob, chat), Array.from({ length: 30 }, (_, i) => `m${i + 1}`));
    assert.equal(bob.got.get(chat)[0].sender, 'alice');
  } finally {
    alice.close();
    bob.close();
  }
});

test('several senders at once: every receiver sees each message once, in seq order', async () => {
  const { rest } = await newApp(node.base);
  const senders = ['s1', 's2', 's3', 's4'];
  const chat = (await rest.createChat({ created_by: 'erin' })).number;
  for (const u of senders) await rest.putMember(chat, u);
  const erin = clientFor(rest, 'erin', node.ws, { client: { positions: { [chat]: 0 } } });
  const raw = [];
  erin.on('frame', (f) => f.type === 'message' && raw.push(f.seq));
  const clients = senders.map((u) => clientFor(rest, u, node.ws, { client: { positions: { [chat]: 0 } } }));
  try {
    await erin.connect();
    await Promise.all(clients.map((c) => c.connect()));
    const per = 25;
    await Promise.all(clients.map((c, k) => Promise.all(Array.from({ length: per }, (_, i) => c.send({ chat, body: `${senders[k]}-${i}` })))));
    const n = per * senders.length;
    await until('erin has all', () => seqs(erin, chat).length === n);
    assertContiguous(assert, seqs(erin, chat), n, 'erin: in order, once');
    for (const [k, c] of clients.entries()) {
      await until(`${senders[k]} has all`, () => seqs(c, chat).length === n);
      assertContiguous(assert, seqs(c, chat), n, `${senders[k]}: in order, once (own messages from acks)`);
    }
    const inversions = raw.filter((s, i) => i > 0 && s < raw[i - 1]).length;
    console.log(`# live frames out of order on the wire: ${inversions} of ${raw.length}`);
  } finally {
    erin.close();
    for (const c of clients) c.close();
  }
});

test('requests answer with typed errors; REST errors carry status and code', async () => {
  const { rest } = await newApp(node.base);
  const chat = (await rest.createChat()).number;
  const carol = clientFor(rest, 'carol', node.ws);
  try {
    await carol.connect();
    await assert.rejects(carol.send({ chat, body: 'hi' }), (e) => e instanceof WeftError && e.code === 'not_a_member');
    await assert.rejects(rest.getChat(9999), (e) => e instanceof WeftHttpError && e.status === 404 && e.code === 'chat_not_found');
  } finally {
    carol.close();
  }
});
