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
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false, done: true });
  for (const s of [2, 1, 1, 4, 3, 2, 5]) ws.frame({ type: 'message', ...msg(3, s) });
  assert.deepEqual(got.map((g) => g.seq), [1, 2, 3, 4, 5]);
  assert.ok(got.every((g) => g.source === 'live' && !g.late));
  assert.equal(client.position(3), 5);
  assert.equal(ws.of('sync').length, 0, 'no sync for a gap that closed by itself');
  client.close();
});

test('the client asks for batched frames and reads one frame a line, in order', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  const p = client.connect();
  const ws = await server.socket(1);
  assert.equal(new URL(ws.url).searchParams.get('batch'), '1');
  ws.welcome();
  await p;
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false, done: true });
  ws.frames([1, 2, 3].map((s) => ({ type: 'message', ...msg(3, s) })));
  ws.frames([{ type: 'typing', chat: 3, user: 'bob' }, { type: 'message', ...msg(3, 4), body: 'two\nlines' }]);
  assert.deepEqual(got.map((g) => g.seq), [1, 2, 3, 4]);
  assert.equal(client.position(3), 4);
  client.close();
});

test('a gap that stays open is filled with sync; a number skipped for good is passed, a late one still comes once', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  const gaps = [];
  client.on('gap', (g) => gaps.push(g));
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false, done: true });
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

test('a resync frame fills its chat with sync at once, with no gap in sight; one during a fill fills again after it', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 }, gapWaitMs: 60_000 } });
  const resyncs = [];
  client.on('resync', (f) => resyncs.push(f));
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false, done: true });
  ws.frame({ type: 'message', ...msg(3, 1) });
  ws.frame({ type: 'resync', chat: 3 });
  const sync = await until('a sync', () => ws.of('sync')[0]);
  assert.deepEqual({ chat: sync.chat, after: sync.after }, { chat: 3, after: 1 });
  assert.deepEqual(resyncs, [{ type: 'resync', chat: 3 }]);
  // Another resync while that sync runs: a second sync once it is answered.
  ws.frame({ type: 'resync', chat: 3 });
  await tick();
  assert.equal(ws.of('sync').length, 1);
  ws.frame({ type: 'messages', id: sync.id, chat: 3, items: [msg(3, 2)], has_more: false });
  const again = await until('a second sync', () => ws.of('sync')[1]);
  assert.deepEqual({ chat: again.chat, after: again.after }, { chat: 3, after: 2 });
  ws.frame({ type: 'messages', id: again.id, chat: 3, items: [msg(3, 3)], has_more: false });
  await until('message 3', () => got.length === 3);
  assert.deepEqual(got.map((g) => g.seq), [1, 2, 3]);
  // A resync for a chat the client does not track is ignored.
  ws.frame({ type: 'resync', chat: 99 });
  await tick();
  assert.equal(ws.of('sync').length, 2);
  client.close();
});

test('a fill that finds nothing more marks the numbers below what was held as absent, not those that came after', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [msg(3, 1)], has_more: false, done: true });
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

test('hello resumes each chat from its position; a cut catch-up pages on with sync at once; caught_up once', async () => {
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
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 11), msg(3, 12)], has_more: true, done: false });
  await sleep(60);
  assert.equal(ws.of('sync').length, 0, 'more frames of chat 3 are coming: no sync');
  // Cut at resume_max_messages: the last frame of chat 3 says so, and the client pages on at once.
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 13)], has_more: true, done: true });
  const sync = ws.of('sync')[0];
  assert.deepEqual({ chat: sync?.chat, after: sync?.after }, { chat: 3, after: 13 }, 'no wait for the next chat or a silence');
  ws.frame({ type: 'messages', id: hello.id, chat: 9, items: [msg(9, 1), msg(9, 2)], has_more: false, done: true }); // 3 came live: skipped
  assert.deepEqual(got.filter((g) => g.chat === 9).map((g) => g.seq), [1, 2, 3]);
  assert.equal(caught, 0, 'chat 3 is still paging on');
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

test('a catch-up frame with more to come is waited for, however long, without a sync', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0, 9: 0 } } });
  let caught = 0;
  client.on('caught_up', () => caught++);
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const hello = ws.of('hello')[0];
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 1)], has_more: true, done: false });
  await sleep(1_200); // longer than the silence the client used to take as the end
  assert.equal(ws.of('sync').length, 0);
  assert.equal(caught, 0);
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 2)], has_more: false, done: true });
  ws.frame({ type: 'messages', id: hello.id, chat: 9, items: [], has_more: false, done: true });
  await until('caught_up', () => caught === 1);
  assert.deepEqual(got.map((g) => [g.chat, g.seq]), [[3, 1], [3, 2]]);
  assert.equal(ws.of('sync').length, 0);
  client.close();
});

test('a hello error names its chat: a chat the user left is dropped, a failing one retried with sync, the others kept', async () => {
  const { server, client } = setup({ client: { positions: { 3: 0, 4: 0, 5: 0 } } });
  const errors = [];
  let caught = 0;
  client.on('error', (e) => errors.push([e.code, e.chat]));
  client.on('caught_up', () => caught++);
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const hello = ws.of('hello')[0];
  // In any order: the error says which chat it is about.
  ws.frame({ type: 'messages', id: hello.id, chat: 4, items: [msg(4, 1)], has_more: false, done: true });
  ws.frame({ type: 'error', id: hello.id, chat: 5, code: 'store_unavailable', message: 'down', retry_after_ms: 80 });
  ws.frame({ type: 'error', id: hello.id, chat: 3, code: 'not_a_member', message: 'no' });
  assert.equal(client.position(3), undefined);
  assert.equal(client.position(4), 1);
  assert.equal(client.position(5), 0);
  assert.deepEqual(errors, [['not_a_member', 3]]);
  await sleep(40);
  assert.equal(caught, 0, 'chat 5 is not caught up yet');
  const sync = await until('chat 5 retried', () => ws.of('sync')[0]);
  assert.deepEqual({ chat: sync.chat, after: sync.after }, { chat: 5, after: 0 });
  ws.frame({ type: 'messages', id: sync.id, chat: 5, items: [msg(5, 1)], has_more: false });
  await until('caught_up', () => caught === 1);
  assert.equal(client.position(5), 1);
  client.close();
});

test('a hello refused as a whole (no chat named) catches its chats up with sync after retry_after_ms', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0, 4: 2 } } });
  let caught = 0;
  client.on('caught_up', () => caught++);
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const hello = ws.of('hello')[0];
  ws.frame({ type: 'error', id: hello.id, code: 'rate_limited', message: 'too many frames', retry_after_ms: 100 });
  await sleep(50);
  assert.equal(ws.of('sync').length, 0, 'held for retry_after_ms');
  assert.equal(client.position(3), 0, 'still tracked');
  const syncs = await until('both chats', () => ws.of('sync').length === 2 && ws.of('sync'), 2_000);
  assert.deepEqual(syncs.map((f) => [f.chat, f.after]).sort(), [[3, 0], [4, 2]]);
  for (const f of syncs) ws.frame({ type: 'messages', id: f.id, chat: f.chat, items: [msg(f.chat, f.after + 1)], has_more: false });
  await until('caught_up', () => caught === 1);
  assert.deepEqual(got.map((g) => [g.chat, g.seq]).sort(), [[3, 1], [4, 3]]);
  client.close();
});

test('a node without `done` still works: each catch-up frame ends its chat, has_more pages on with sync', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 0 } } });
  let caught = 0;
  client.on('caught_up', () => caught++);
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  const hello = ws.of('hello')[0];
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 1), msg(3, 2)], has_more: true });
  const sync = await until('paging on', () => ws.of('sync')[0]);
  assert.deepEqual({ chat: sync.chat, after: sync.after }, { chat: 3, after: 2 });
  // The catch-up's next frame and the sync overlap: each message once.
  ws.frame({ type: 'messages', id: hello.id, chat: 3, items: [msg(3, 3)], has_more: false });
  ws.frame({ type: 'messages', id: sync.id, chat: 3, items: [msg(3, 3), msg(3, 4)], has_more: false });
  await until('caught_up', () => caught === 1);
  assert.deepEqual(got.map((g) => g.seq), [1, 2, 3, 4]);
  client.close();
});

test('history(): the newest page or the one before a number, read backward; only newer items than a tracked position come as `message`', async () => {
  const { server, client, got } = setup({ client: { positions: { 3: 5 } } });
  client.connect();
  const ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false, done: true });
  const newest = client.history(3, { limit: 4 });
  const f1 = ws.of('sync')[0];
  assert.deepEqual({ ...f1, id: 0 }, { type: 'sync', id: 0, chat: 3, latest: true, limit: 4 });
  ws.frame({ type: 'messages', id: f1.id, chat: 3, items: [4, 5, 6, 7].map((n) => msg(3, n)), has_more: true });
  const page = await newest;
  assert.deepEqual(page.items.map((m) => m.seq), [4, 5, 6, 7]);
  assert.equal(page.has_more, true);
  assert.deepEqual(got.map((g) => [g.seq, g.source]), [[6, 'sync'], [7, 'sync']], 'above the position: delivered once, in order');
  const older = client.history(3, { before: 4 });
  const f2 = ws.of('sync')[1];
  assert.deepEqual({ ...f2, id: 0 }, { type: 'sync', id: 0, chat: 3, before: 4, limit: 50 });
  ws.frame({ type: 'messages', id: f2.id, chat: 3, items: [1, 2, 3].map((n) => msg(3, n)), has_more: false });
  assert.deepEqual((await older).items.map((m) => m.seq), [1, 2, 3]);
  assert.equal(got.length, 2, 'older messages are not emitted again');
  // An untracked chat stays untracked; a refusal rejects with its code.
  const other = client.history(8);
  const f3 = ws.of('sync')[2];
  ws.frame({ type: 'messages', id: f3.id, chat: 8, items: [msg(8, 1)], has_more: false });
  await other;
  assert.equal(client.position(8), undefined);
  const refused = client.history(9, { before: 0 });
  ws.frame({ type: 'error', id: ws.of('sync')[3].id, code: 'invalid_frame', message: '`before` must be at least 1' });
  await assert.rejects(refused, (e) => e instanceof WeftError && e.code === 'invalid_frame');
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

test('token_expiring: a new token from getToken goes in-band with refresh on the same socket; a refused one falls back to 4001', async () => {
  const { server, client, tokens } = setup();
  const refreshed = [];
  client.on('token_refreshed', (r) => refreshed.push(r.reason));
  client.connect();
  let ws = await server.socket(1);
  ws.welcome();
  ws.frame({ type: 'token_expiring', expires_at: '2026-01-01T00:00:00Z' });
  const refresh = await until('a refresh', () => ws.of('refresh')[0]);
  assert.equal(refresh.token, 'tok-2');
  assert.deepEqual(tokens.map((t) => [t.reason, t.previous]), [['initial', undefined], ['expiring', 'tok-1']]);
  ws.frame({ type: 'refreshed', id: refresh.id, expires_at: '2026-01-01T00:15:00Z' });
  await until('token_refreshed', () => refreshed.length === 1);
  assert.deepEqual(refreshed, ['expiring']);
  assert.equal(server.sockets.length, 1, 'the same socket');
  assert.equal(client.state, 'connected');

  // The node refuses the next one: nothing changes until it closes with 4001 at expiry,
  // then the client reconnects with a token asked for then.
  ws.frame({ type: 'token_expiring', expires_at: '2026-01-01T00:15:00Z' });
  const second = await until('a second refresh', () => ws.of('refresh')[1]);
  assert.equal(second.token, 'tok-3');
  assert.equal(tokens[2].previous, 'tok-2', 'the refreshed token is the current one');
  ws.frame({ type: 'error', id: second.id, code: 'invalid_token', message: 'another session' });
  await sleep(20);
  assert.equal(server.sockets.length, 1);
  assert.deepEqual(refreshed, ['expiring']);
  ws.serverClose(4001, 'token expired');
  ws = await server.socket(2);
  assert.match(ws.url, /token=tok-4/);
  assert.deepEqual(tokens.map((t) => t.reason), ['initial', 'expiring', 'expiring', 'expired']);
  assert.equal(tokens[3].previous, 'tok-2');
  client.close();

  // With a fixed token there is nothing to refresh with: no refresh frame.
  const fixed = new FakeServer();
  const plain = new WeftClient({ url: 'ws://node-1.test/ws', token: 'fixed', WebSocket: fixed.WebSocket });
  plain.connect();
  const only = await fixed.socket(1);
  only.welcome();
  only.frame({ type: 'token_expiring', expires_at: '2026-01-01T00:00:00Z' });
  await sleep(20);
  assert.equal(only.of('refresh').length, 0);
  plain.close();
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
  ws.frame({ type: 'messages', id: ws.of('hello')[0].id, chat: 3, items: [], has_more: false, done: true });
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
