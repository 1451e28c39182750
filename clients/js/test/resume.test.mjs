// One live node: resume after a dropped connection, idempotent retries, the
// rate limit, token refresh. Connections are dropped through a TCP proxy.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { WeftClient } from '../dist/index.js';
import { singleNode, newApp, clientFor, until, seqs, bodies, tcpProxy, history, assertContiguous, sleep } from './helpers.mjs';

const node = await singleNode();
after(() => node.dispose());

async function groupOf(rest, users) {
  const chat = (await rest.createChat({ created_by: users[0] })).number;
  for (const u of users.slice(1)) await rest.putMember(chat, u);
  return chat;
}

test('a dropped client resumes with hello: what was sent meanwhile comes once, in order', async () => {
  const { rest } = await newApp(node.base);
  const chat = await groupOf(rest, ['alice', 'bob']);
  const proxy = await tcpProxy(node.port);
  const alice = clientFor(rest, 'alice', node.ws, { client: { positions: { [chat]: 0 } } });
  const bob = clientFor(rest, 'bob', proxy.url, { client: { positions: { [chat]: 0 } } });
  try {
    await alice.connect();
    await bob.connect();
    for (let i = 1; i <= 10; i++) await alice.send({ chat, body: `a${i}` });
    await until('bob has 10', () => seqs(bob, chat).length === 10);
    const down = bob.waitFor('disconnected');
    proxy.blocked = true;
    proxy.cut();
    await down;
    for (let i = 11; i <= 30; i++) await alice.send({ chat, body: `a${i}` });
    for (let i = 31; i <= 35; i++) await rest.postMessage(chat, { body: `r${i}`, sender: 'carol' });
    assert.equal(seqs(bob, chat).length, 10, 'nothing reaches bob while he is cut off');
    const caught = bob.waitFor('caught_up');
    proxy.blocked = false;
    await caught;
    assertContiguous(assert, seqs(bob, chat), 35, 'bob: 1..35 once, in order');
    assert.ok(bob.all.some(({ info }) => info.source === 'resume'), 'the missed ones came in the catch-up');
    assert.equal(bodies(bob, chat)[34], 'r35');
    // Live again after the resume.
    await alice.send({ chat, body: 'after' });
    await until('bob has 36', () => seqs(bob, chat).length === 36);
    assertContiguous(assert, seqs(bob, chat), 36, 'bob: 1..36');
    assert.deepEqual(bob.positions(), { [chat]: 36 });
  } finally {
    alice.close();
    bob.close();
    proxy.close();
  }
});

test('sends made while offline and a send whose ack was lost are retried with their client_msg_id and stored once', async () => {
  const { rest } = await newApp(node.base);
  const chat = await groupOf(rest, ['alice', 'bob']);
  const proxy = await tcpProxy(node.port);
  const alice = clientFor(rest, 'alice', proxy.url, { client: { positions: { [chat]: 0 } } });
  const bob = clientFor(rest, 'bob', node.ws, { client: { positions: { [chat]: 0 } } });
  try {
    await alice.connect();
    await bob.connect();
    // The ack is lost: the node stores the message, the answer never reaches alice.
    proxy.muteDown = true;
    const lost = alice.send({ chat, body: 'ack lost', client_msg_id: 'k-1' });
    await until('stored', async () => (await history(rest, chat)).length === 1);
    proxy.blocked = true;
    proxy.cut();
    proxy.muteDown = false;
    // Sends while offline wait in the client.
    const offline = [1, 2, 3, 4, 5].map((i) => alice.send({ chat, body: `offline ${i}` }));
    await sleep(300);
    assert.equal(alice.pendingSends, 6);
    proxy.blocked = false;
    const ack = await lost;
    assert.deepEqual(ack, { chat, seq: 1, client_msg_id: 'k-1' });
    const acks = await Promise.all(offline);
    assert.deepEqual(acks.map((a) => a.seq), [2, 3, 4, 5, 6], 'in the order sent');
    const stored = await history(rest, chat);
    assert.deepEqual(stored.map((m) => m.body), ['ack lost', 'offline 1', 'offline 2', 'offline 3', 'offline 4', 'offline 5']);
    await until('bob has 6', () => seqs(bob, chat).length === 6);
    assertContiguous(assert, seqs(bob, chat), 6, 'bob: each once');
    await until('alice has 6', () => seqs(alice, chat).length === 6);
    assertContiguous(assert, seqs(alice, chat), 6, 'alice: her own, each once');
    // The same client_msg_id again is the same message.
    assert.deepEqual(await alice.send({ chat, body: 'ack lost', client_msg_id: 'k-1' }), ack);
    assert.equal((await history(rest, chat)).length, 6);
  } finally {
    alice.close();
    bob.close();
    proxy.close();
  }
});

test('the send rate limit: the client waits retry_after_ms, is never closed, and every send is stored once', async () => {
  const slow = await singleNode({ WEFT_GATEWAY_SEND_RATE_PER_SEC: '8', WEFT_GATEWAY_SEND_BURST: '3' });
  const { rest } = await newApp(slow.base);
  const chat = await groupOf(rest, ['alice', 'bob']);
  const alice = clientFor(rest, 'alice', slow.ws);
  const bob = clientFor(rest, 'bob', slow.ws, { client: { positions: { [chat]: 0 } } });
  let limited = 0;
  const drops = [];
  alice.on('frame', (f) => {
    if (f.type === 'error' && f.code === 'rate_limited') {
      limited++;
      assert.ok(f.retry_after_ms > 0);
    }
  });
  alice.on('disconnected', (d) => drops.push(d.code));
  try {
    await alice.connect();
    await bob.connect();
    const n = 24;
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => alice.send({ chat, body: `m${i + 1}` })));
    assert.ok(limited > 0, 'the node refused some sends for the rate');
    assert.deepEqual(drops, [], 'never closed (no 4100)');
    assert.equal(new Set(acks.map((a) => a.seq)).size, n);
    const stored = await history(rest, chat);
    assert.equal(stored.length, n, 'each stored once');
    assert.deepEqual(stored.map((m) => m.body).sort(), acks.map((_, i) => `m${i + 1}`).sort());
    await until('bob has all', () => seqs(bob, chat).length === n);
    assertContiguous(assert, seqs(bob, chat), n, 'bob: in order, once');
  } finally {
    alice.close();
    bob.close();
    await slow.dispose();
  }
});

test('token refresh: short-lived tokens (4001), a rotated secret (4001), a refused handshake (401)', async () => {
  const { rest } = await newApp(node.base);
  const chat = await groupOf(rest, ['alice', 'bob']);
  const alice = clientFor(rest, 'alice', node.ws);
  // bob's tokens live 2 s: the node closes his session with 4001 when one expires.
  const bob = clientFor(rest, 'bob', node.ws, { ttl: 2, client: { positions: { [chat]: 0 } } });
  const closes = [];
  bob.on('disconnected', (d) => closes.push(d.code));
  try {
    await alice.connect();
    await bob.connect();
    let sent = 0;
    const end = Date.now() + 2_500;
    while (Date.now() < end || !closes.includes(4001)) {
      await alice.send({ chat, body: `m${++sent}` });
      await sleep(100);
      if (sent > 400) throw new Error('no 4001 in 40 s');
    }
    assert.ok(closes.includes(4001), `bob was closed with 4001 (${closes})`);
    assert.ok(bob.tokens.some((t) => t.req.reason === 'expired'), 'getToken was asked again');
    await until('bob has all', () => seqs(bob, chat).length === sent);
    assertContiguous(assert, seqs(bob, chat), sent, 'bob: nothing lost across the refreshes');

    // Rotating the secret closes every session of the application with 4001.
    const before = alice.tokens.length;
    const rotated = alice.waitFor('disconnected', (d) => d.code === 4001);
    await rest.rotateSecret();
    await rotated;
    await alice.waitFor('connected');
    assert.equal(alice.tokens.length, before + 1);
    await alice.send({ chat, body: 'after rotation' });
    await until('bob has it', () => bodies(bob, chat).includes('after rotation'));

    // A token the node refuses at the handshake (401): the client asks for another.
    const given = [];
    const carol = new WeftClient({
      url: node.base,
      getToken: async (req) => {
        given.push(req.reason);
        return given.length === 1 ? 'forged.token.value' : (await rest.createUserToken('carol')).token;
      },
      reconnect: { minDelayMs: 50, maxDelayMs: 500 },
    });
    const w = await carol.connect();
    assert.equal(w.user, 'carol');
    assert.deepEqual(given, ['initial', 'expired']);
    carol.close();
  } finally {
    alice.close();
    bob.close();
  }
});

/**
 * A `getToken` for `user` backed by a session (`POST …/users/:user/sessions`): the first
 * call gives its access token, later ones trade the refresh token (`POST /auth/refresh`)
 * for the next pair of the same session. `onExpiring` overrides the `expiring` answer.
 */
function sessionTokens(rest, user, onExpiring) {
  const asked = [];
  let refresh;
  const newSession = () => rest.call('POST', `/api/v1/applications/${rest.appToken}/users/${user}/sessions`, {});
  const getToken = async (req) => {
    asked.push(req.reason);
    if (req.reason === 'expiring' && onExpiring) return onExpiring(newSession);
    const pair = refresh ? await rest.call('POST', '/api/v1/auth/refresh', { refresh_token: refresh }) : await newSession();
    refresh = pair.refresh_token;
    return pair.access_token;
  };
  return { asked, getToken };
}

test('token_expiring: the client refreshes in-band and the session stays on its socket past its token expiry; a refused refresh falls back to 4001', async () => {
  // Access tokens live 3 s; the node warns 1.5 s before (half the lifetime) and checks every 100 ms.
  const short = await singleNode({ WEFT_SESSIONS_ACCESS_TTL_SECS: '3', WEFT_GATEWAY_HEARTBEAT_MS: '400' });
  const { rest } = await newApp(short.base);
  const chat = await groupOf(rest, ['alice', 'bob', 'carol']);
  const tokens = sessionTokens(rest, 'alice');
  const alice = clientFor(rest, 'alice', short.ws, { client: { getToken: tokens.getToken, positions: { [chat]: 0 } } });
  const bob = clientFor(rest, 'bob', short.ws);
  const connects = [];
  const drops = [];
  const refreshed = [];
  const answers = [];
  alice.on('connected', (c) => connects.push(c.session));
  alice.on('disconnected', (d) => drops.push(d.code));
  alice.on('token_refreshed', (r) => refreshed.push(r.reason));
  alice.on('refreshed', (f) => answers.push(f.expires_at));
  try {
    await alice.connect();
    await bob.connect();
    const opened = Date.now();
    // Three token lifetimes, with traffic throughout.
    let sent = 0;
    while (Date.now() - opened < 9_000) {
      await bob.send({ chat, body: `m${++sent}` });
      await sleep(200);
    }
    await until('alice has all', () => seqs(alice, chat).length === sent);
    assertContiguous(assert, seqs(alice, chat), sent, 'alice: every message, in order');
    assert.ok(alice.all.every(({ info }) => info.source === 'live'), 'all of them live: no reconnect, no catch-up');
    assert.deepEqual(drops, [], 'alice was never disconnected (no 4001)');
    assert.equal(connects.length, 1, 'one socket');
    assert.equal(alice.state, 'connected');
    assert.ok(refreshed.length >= 2, `refreshed in-band at least twice (${refreshed})`);
    assert.ok(refreshed.every((r) => r === 'expiring'));
    assert.equal(answers.length, refreshed.length, 'each refresh answered with `refreshed`');
    assert.deepEqual(tokens.asked, ['initial', ...refreshed.map(() => 'expiring')], 'getToken asked before each expiry, never after');
    // Still a working session after its first tokens expired.
    const ack = await alice.send({ chat, body: 'still here' });
    await until('bob has it', () => bodies(bob, chat).includes('still here'));
    assert.equal(ack.seq, sent + 1);

    // A token of another session is refused in-band: the socket closes with 4001 at
    // expiry and the client reconnects with a token asked for then.
    const carolTokens = sessionTokens(rest, 'carol', async (newSession) => (await newSession()).access_token);
    const carol = clientFor(rest, 'carol', short.ws, { client: { getToken: carolTokens.getToken } });
    const carolDrops = [];
    carol.on('disconnected', (d) => carolDrops.push(d.code));
    try {
      await carol.connect();
      await carol.waitFor('connected', undefined, 10_000);
      assert.deepEqual(carolDrops, [4001], 'the refused refresh left the 4001 at expiry');
      assert.deepEqual(carolTokens.asked.slice(0, 3), ['initial', 'expiring', 'expired']);
      await carol.send({ chat, body: 'carol is back' });
      await until('bob has it', () => bodies(bob, chat).includes('carol is back'));
    } finally {
      carol.close();
    }
  } finally {
    alice.close();
    bob.close();
    await short.dispose();
  }
});

test('a catch-up cut at gateway.resume_max_messages pages on with sync: every missed message, once, in order', async () => {
  const small = await singleNode({ WEFT_GATEWAY_RESUME_MAX_MESSAGES: '40' });
  const { rest } = await newApp(small.base);
  const chat = await groupOf(rest, ['alice', 'bob']);
  const other = await groupOf(rest, ['alice', 'bob']);
  for (let i = 1; i <= 130; i++) await rest.postMessage(chat, { body: `m${i}`, sender: 'alice' });
  for (let i = 1; i <= 3; i++) await rest.postMessage(other, { body: `o${i}`, sender: 'alice' });
  const bob = clientFor(rest, 'bob', small.ws, { client: { positions: { [chat]: 5, [other]: 0 } } });
  const ends = [];
  bob.on('messages', (f) => {
    if (f.done) ends.push([f.chat, f.has_more]);
  });
  try {
    const caught = bob.waitFor('caught_up');
    await bob.connect();
    await caught;
    assert.deepEqual(ends, [[chat, true], [other, false]], "each chat's catch-up ends with `done`; the cut one says `has_more`");
    assert.deepEqual(seqs(bob, chat), Array.from({ length: 125 }, (_, i) => i + 6));
    assert.deepEqual(seqs(bob, other), [1, 2, 3]);
    const sources = new Set(bob.all.filter(({ m }) => m.chat === chat).map(({ info }) => info.source));
    assert.deepEqual([...sources].sort(), ['resume', 'sync']);
  } finally {
    bob.close();
    await small.dispose();
  }
});

test('a hello error names its chat: a chat the user left or that does not exist is dropped, the others caught up', async () => {
  const { rest } = await newApp(node.base);
  const mine = await groupOf(rest, ['alice', 'bob']);
  const left = await groupOf(rest, ['alice', 'bob']);
  for (let i = 1; i <= 3; i++) await rest.postMessage(mine, { body: `m${i}`, sender: 'alice' });
  await rest.removeMember(left, 'bob');
  const bob = clientFor(rest, 'bob', node.ws, { client: { positions: { [left]: 0, 999: 0, [mine]: 1 } } });
  const errors = [];
  bob.on('error', (e) => errors.push([e.code, e.chat]));
  try {
    const caught = bob.waitFor('caught_up');
    await bob.connect();
    const { chats } = await caught;
    assert.deepEqual(chats, [mine]);
    assert.deepEqual(seqs(bob, mine), [2, 3]);
    assert.deepEqual(errors.sort(), [['chat_not_found', 999], ['not_a_member', left]].sort());
    assert.equal(bob.position(left), undefined);
  } finally {
    bob.close();
  }
});
