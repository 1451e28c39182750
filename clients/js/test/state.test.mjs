// The client's state machine against a scripted server (test/fake.mjs):
// ordering and gaps, hello resume, close codes, retries, rate limits.
// The live-node tests (the other files) cover the same paths end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { WeftClient, WeftError, mentionsOf } from '../dist/index.js';
import { FakeServer, msg } from './fake.mjs';
import { sleep, until } from './helpers.mjs';

const tick = () => new Promise((r) => setImmediate(r));

function setup(opts = {}) {
  const server = new FakeServer();
  const tokens = [];
  const client = new WeftClient({
    url: opts.url ?? 'ws://node-1.test/ws',
    getToken: async (req) => {
      tokens.push(req);
      return `tok-${tokens.length}`;
    },
    WebSocket: server.WebSocket,
    fetch: opts.fetch ?? (async () => new Response('{}', { status: 200 })),
    gapWaitMs: 50,
    reconnect: { minDelayMs: 20, maxDelayMs: 200, stableAfterMs: 100_000 },
    ...opts.client,
  });
  const got = [];
  client.on('message', (m, info) => got.push({ chat: m.chat, seq: m.seq, ...info }));
  return { server, client, tokens, got };
}

test('live frames out of order come out in order, once', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  const p = client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  await p;
  assert.deepEqual(ws.of('hello')[0].resume, [{ chat: 3, after: 0 }]);
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false });
  for (const s of [2, 1, 1, 4, 3, 2, 5]) ws.frame({ type: 'message', ...msg(3, s) });
  assert.deepEqual(got.map((g) => g.seq), [1, 2, 3, 4, 5]);
  assert.ok(got.every((g) => g.source === 'live' && !g.late));
  assert.equal(client.position(3), 5);
  assert.equal(ws.of('sync').length, 0, 'no sync for a gap that closed by itself');
  client.close();
});

test('a gap that stays open is filled with sync; a number skipped for good is passed, a late one still comes once', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  const gaps = [];
  client.on('gap', (g) => gaps.push(g));
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false });
  ws.frame({ type: 'message', ...msg(3, 1) });
  ws.frame({ type: 'message', ...msg(3, 4) });
  assert.deepEqual(got.map((g) => g.seq), [1]);
  const sync = await until('a sync', () => ws.of('sync')[0]);
  assert.deepEqual({ chat: sync.chat, after: sync.after }, { chat: 3, after: 1 });
  assert.deepEqual(gaps, [{ chat: 3, after: 1, before: 4 }]);
  // 2 is stored, 3 is not (a number drawn by a send that failed).
  ws.frame({ type: 'messages', id: sync.id, chat: 3, items: [msg(3, 2), msg(3, 4)], has_more: false });
  await tick();
  assert.deepEqual(got.map((g) => g.seq), [1, 2, 4]);
  assert.equal(got[1].source, 'sync');
  assert.equal(client.position(3), 4);
  // A very late 3 still comes, once, marked late; 4 again does not.
  ws.frame({ type: 'message', ...msg(3, 3) });
  ws.frame({ type: 'message', ...msg(3, 3) });
  ws.frame({ type: 'message', ...msg(3, 4) });
  assert.deepEqual(got.map((g) => [g.seq, g.late]), [[1, false], [2, false], [4, false], [3, true]]);
  client.close();
});

test('a fill that finds nothing more marks the numbers below what was held as absent, not those that came after', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [msg(3, 1)], has_more: false });
  ws.frame({ type: 'message', ...msg(3, 4) });
  const sync = await until('a sync', () => ws.of('sync')[0]);
  // 7 comes live after the sync was asked for: 5 and 6 may still be on their way.
  ws.frame({ type: 'message', ...msg(3, 7) });
  ws.frame({ type: 'messages', id: sync.id, chat: 3, items: [], has_more: false });
  await tick();
  assert.deepEqual(got.map((g) => g.seq), [1, 4], '2 and 3 are not stored; 4 was held before the read');
  ws.frame({ type: 'message', ...msg(3, 6) });
  ws.frame({ type: 'message', ...msg(3, 5) });
  assert.deepEqual(got.map((g) => [g.seq, g.late]), [[1, false], [4, false], [5, false], [6, false], [7, false]]);
  client.close();
});

test('hello resumes each chat from its position; a cut catch-up pages on with sync; caught_up once', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 10, 9: 0 } } });
  let caught = 0;
  client.on('caught_up', () => caught++);
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const hello = ws.of('hello')[0];
  assert.deepEqual(hello.resume, [{ chat: 3, after: 10 }, { chat: 9, after: 0 }]);
  // A live message of chat 9 before its catch-up: held back.
  ws.frame({ type: 'message', ...msg(9, 3) });
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 11), msg(3, 12)], has_more: true });
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 13)], has_more: true }); // cut at resume_max_messages
  ws.frame({ type: 'messages', id: hello.id, chat: 9, items: [msg(9, 1), msg(9, 2)], has_more: false }); // 3 came live: skipped
  assert.deepEqual(got.filter((g) => g.chat === 9).map((g) => g.seq), [1, 2, 3]);
  const sync = await until('paging on chat 3', () => ws.of('sync')[0]);
  assert.deepEqual({ chat: sync.chat, after: sync.after }, { chat: 3, after: 13 });
  assert.equal(caught, 0);
  ws.frame({ type: 'messages', id: sync.id, chat: 3, items: [msg(3, 14)], has_more: false });
  await tick();
  assert.deepEqual(got.filter((g) => g.chat === 3).map((g) => [g.seq, g.source]), [
    [11, 'resume'],
    [12, 'resume'],
    [13, 'resume'],
    [14, 'sync'],
  ]);
  await until('caught_up', () => caught === 1);
  client.close();
});

test('a hello error drops a chat the user left and keeps the others', async () => {
  const { server, client } = setup({ client: { positions: { 3: 0, 4: 0 } } });
  const errors = [];
  client.on('error', (e) => errors.push(e.code));
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const hello = ws.of('hello')[0];
  ws.frame({ type: 'error', id: hello.id, code: 'not_a_member', message: 'no' });
  ws.frame({ type: 'messages', id: hello.id, chat: 4, items: [msg(4, 1)], has_more: false });
  assert.equal(client.position(3), undefined);
  assert.equal(client.position(4), 1);
  assert.deepEqual(errors, ['not_a_member']);
  client.close();
});

test('sends: pipelined, answered by id, retried with the same client_msg_id after a drop, rate limits obeyed', async () => {
  const { server, client, got } = setup({ client: { maxInflightSends: 4 } });
  client.connect();
  let ws = await server.socket(1);
  ws.welcome('alice');
  const sends = [1, 2, 3, 4, 5, 6].map((i) => client.send({ chat: 3, body: `b${i}` }));
  assert.equal(ws.of('send').length, 4, 'a window of 4');
  const first = ws.of('send');
  ws.frame({ type: 'ack', id: first[0].id, chat: 3, seq: 1 });
  assert.equal(ws.of('send').length, 5);
  // The second is refused for the rate: nothing more is written until retry_after_ms.
  ws.frame({ type: 'error', id: first[1].id, code: 'rate_limited', message: 'too many sends', retry_after_ms: 80 });
  ws.frame({ type: 'error', id: first[2].id, code: 'rate_limited', message: 'too many sends', retry_after_ms: 80 });
  ws.frame({ type: 'error', id: first[3].id, code: 'rate_limited', message: 'too many sends', retry_after_ms: 80 });
  const written = ws.sent.length;
  await sleep(40);
  assert.equal(ws.sent.length, written, 'held during retry_after_ms');
  // The fifth's answer is lost with the connection.
  ws.serverClose(1006);
  ws = await server.socket(2);
  ws.welcome('alice');
  // After a rate limit: one at a time, in order, same client_msg_ids.
  await until('a resend', () => ws.of('send').length === 1, 2_000);
  const again = ws.of('send')[0];
  assert.equal(again.client_msg_id, first[1].client_msg_id);
  let seq = 2;
  for (let i = 0; i < 5; i++) {
    const f = await until(`send ${i}`, () => ws.of('send')[i], 2_000);
    ws.frame({ type: 'ack', id: f.id, chat: 3, seq: seq++ });
  }
  const acks = await Promise.all(sends);
  assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(new Set(acks.map((a) => a.client_msg_id)).size, 6);
  assert.deepEqual(got.map((g) => [g.seq, g.source]), [1, 2, 3, 4, 5, 6].map((s) => [s, 'own']));
  client.close();
});

test('a refused send rejects with the server code; a frame too large is refused before sending', async () => {
  const { server, client } = setup();
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const p = client.send({ chat: 3, body: 'x' });
  const f = ws.of('send')[0];
  ws.frame({ type: 'error', id: f.id, code: 'not_a_member', message: 'you are not a member of this chat' });
  await assert.rejects(p, (e) => e instanceof WeftError && e.code === 'not_a_member');
  await assert.rejects(client.send({ chat: 3, body: 'x'.repeat(70_000) }), (e) => e.code === 'frame_too_large');
  client.close();
});

test('close codes: 4001 refreshes the token, 1012 moves to the next node at once, 4200 resyncs, 4100 backs off, 4000–4099 stop', async () => {
  const { server, client, tokens } = setup({ url: ['ws://n1.test/ws', 'ws://n2.test/ws'] });
  const disconnects = [];
  client.on('disconnected', (d) => disconnects.push(d));
  client.connect();
  let ws = await server.socket(1);
  assert.match(ws.url, /n1\.test.*token=tok-1/);
  ws.welcome();
  ws.serverClose(4001, 'token expired');
  ws = await server.socket(2);
  assert.match(ws.url, /n1\.test.*token=tok-2/, 'same node, new token');
  assert.deepEqual(tokens.map((t) => t.reason), ['initial', 'expired']);
  assert.equal(tokens[1].previous, 'tok-1');
  ws.welcome();
  ws.serverClose(1012, 'restart');
  ws = await server.socket(3);
  assert.match(ws.url, /n2\.test/, '1012: the next node');
  assert.equal(disconnects.at(-1).delayMs, 0);
  ws.welcome();
  ws.serverClose(4200, 'slow consumer');
  ws = await server.socket(4);
  assert.match(ws.url, /n2\.test/);
  ws.welcome();
  ws.serverClose(4100, 'flooding');
  assert.ok(disconnects.at(-1).delayMs >= 20, 'backs off');
  ws = await server.socket(5);
  ws.welcome();
  const closed = client.waitFor('closed');
  ws.serverClose(4003, 'forbidden');
  const c = await closed;
  assert.equal(c.code, 4003);
  assert.equal(client.state, 'closed');
  await sleep(50);
  assert.equal(server.sockets.length, 5, 'no reconnect after 4003');
});

test('a refused handshake asks /api/v1/me: 401 gets a new token, anything else backs off', async () => {
  let status = 401;
  const asked = [];
  const { server, client, tokens } = setup({
    fetch: async (url, init) => {
      asked.push([String(url), init.headers.authorization]);
      return new Response('{}', { status });
    },
  });
  server.refuse = 1;
  client.connect();
  const ws = await server.socket(2);
  assert.deepEqual(asked, [['http://node-1.test/api/v1/me', 'Bearer tok-1']]);
  assert.deepEqual(tokens.map((t) => t.reason), ['initial', 'expired']);
  assert.match(ws.url, /token=tok-2/);
  ws.welcome();
  status = 503;
  server.refuse = 1;
  ws.serverClose(1006);
  await server.socket(4);
  assert.equal(tokens.length, 2, 'a node down is no reason for a new token');
  client.close();
});

test('requests: answered by id, retried after a drop when safe, rejected when not; timeouts', async () => {
  const { server, client } = setup({ client: { requestTimeoutMs: 100 } });
  client.connect();
  let ws = await server.socket(1);
  ws.welcome();
  const search = client.search('hello', { per_page: 5 });
  const edit = client.edit(3, 1, 'fixed');
  const [s1, e1] = [ws.of('search')[0], ws.of('edit')[0]];
  assert.deepEqual({ ...s1, id: 0 }, { type: 'search', id: 0, query: 'hello', per_page: 5 });
  ws.serverClose(1006);
  await assert.rejects(edit, (e) => e.code === 'disconnected');
  ws = await server.socket(2);
  ws.welcome();
  const s2 = await until('search again', () => ws.of('search')[0]);
  void e1;
  ws.frame({ type: 'search_results', id: s2.id, items: [], has_more: false });
  assert.deepEqual((await search).items, []);
  await assert.rejects(client.react(3, 1, '👍'), (e) => e.code === 'timeout');
  client.close();
});

test('heartbeat: a node that answers nothing for a while is left for another', async () => {
  const { server, client } = setup({
    url: ['ws://n1.test/ws', 'ws://n2.test/ws'],
    client: { heartbeatMs: 80, requestTimeoutMs: 80, positions: { 3: 7 } },
  });
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false });
  const probe = await until('a probe', () => ws.of('sync')[0], 2_000);
  assert.deepEqual({ chat: probe.chat, after: probe.after, limit: probe.limit }, { chat: 3, after: 7, limit: 1 });
  const next = await server.socket(2, 2_000);
  assert.match(next.url, /n2\.test/);
  client.close();
});

test('mentions follow the server rule', () => {
  assert.deepEqual(mentionsOf('@bob can you look? cc @carol.'), ['bob', 'carol']);
  assert.deepEqual(mentionsOf('mail a@b.c and @bob @bob'), ['bob']);
  assert.deepEqual(mentionsOf('@alice:'), ['alice']);
});
