// Every client frame the client wraps, and the event each fans out, against a
// live node; and the REST helpers for backends.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { WeftHttpError, WeftError } from '../dist/index.js';
import { singleNode, newApp, clientFor, until, bodies, history } from './helpers.mjs';

const node = await singleNode({ WEFT_WEBHOOKS_ALLOW_HTTP: 'true', WEFT_WEBHOOKS_ALLOW_PRIVATE: 'true' });
after(() => node.dispose());

const FCM = 'dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx';

/** Records every event of `types` a client gets. */
function record(client, types) {
  const seen = {};
  for (const t of types) client.on(t, (f) => (seen[t] ??= []).push(f));
  return seen;
}

test('every client frame and the event it fans out', async () => {
  const { rest } = await newApp(node.base);
  const chat = (await rest.createChat({ created_by: 'alice', name: 'Launch' })).number;
  await rest.putMember(chat, 'bob');
  const alice = clientFor(rest, 'alice', node.ws, { client: { positions: { [chat]: 0 } } });
  const bob = clientFor(rest, 'bob', node.ws, { client: { positions: { [chat]: 0 } } });
  const events = [
    'message_edited', 'message_deleted', 'reaction', 'thread_updated', 'typing', 'presence', 'receipt',
    'chat_updated', 'member_joined', 'member_left', 'role_changed', 'search_results', 'upload_ready',
    'device_registered', 'device_unregistered', 'notification_settings',
  ];
  const seen = record(bob, events);
  const mine = record(alice, events);
  try {
    await bob.connect();
    await alice.connect();
    await until('bob sees alice online', () => seen.presence?.some((p) => p.user === 'alice' && p.online));

    const first = await alice.send({ chat, body: 'hello @bob' });
    const reply = await alice.send({ chat, body: 'a reply', reply_to: first.seq });
    await until('bob has 2', () => bodies(bob, chat).length === 2);
    assert.deepEqual(bob.got.get(chat)[0].mentions, ['bob']);
    assert.equal(bob.got.get(chat)[1].reply_to, first.seq);
    assert.deepEqual(alice.got.get(chat)[0].mentions, ['bob'], 'the own echo computes mentions as the server does');
    await until('thread_updated', () => seen.thread_updated?.length === 1);
    assert.equal(seen.thread_updated[0].reply_count, 1);

    alice.typing(chat);
    alice.typing(chat); // throttled: one frame
    await until('typing', () => seen.typing?.length === 1);
    assert.deepEqual(seen.typing[0], { type: 'typing', chat, user: 'alice' });

    await bob.delivered(chat, reply.seq);
    await bob.read(chat, first.seq);
    await until('receipts', () => mine.receipt?.length === 2);
    assert.deepEqual(mine.receipt.map((r) => [r.kind, r.seq]), [['delivered', 2], ['read', 1]]);
    const states = await rest.readState(chat);
    assert.deepEqual(states.find((r) => r.user_id === 'bob'), { user_id: 'bob', delivered: 2, read: 1 });

    await alice.edit(chat, first.seq, 'hello @bob, fixed');
    await until('message_edited', () => seen.message_edited?.length === 1);
    assert.equal(seen.message_edited[0].body, 'hello @bob, fixed');
    await assert.rejects(bob.edit(chat, first.seq, 'not mine'), (e) => e instanceof WeftError && e.code === 'forbidden');

    await bob.react(chat, first.seq, '👍');
    await bob.react(chat, first.seq, '👍'); // idempotent
    await until('reaction', () => mine.reaction?.length === 1);
    assert.deepEqual(mine.reaction[0], { type: 'reaction', chat, seq: first.seq, user: 'bob', emoji: '👍', op: 'add', count: 1 });
    await bob.unreact(chat, first.seq, '👍');
    await until('unreaction', () => mine.reaction?.length === 2 && mine.reaction[1].op === 'remove');

    await alice.deleteMessage(chat, reply.seq);
    await until('message_deleted', () => seen.message_deleted?.length === 1);
    await assert.rejects(alice.edit(chat, reply.seq, 'gone'), (e) => e.code === 'message_deleted');
    const page = await bob.sync(chat, 0);
    assert.equal(page.items[1].deleted, true);
    assert.equal(page.items[0].edited_at !== undefined, true);

    await alice.updateChat(chat, { name: 'Launch 2', metadata: { topic: 'go' } });
    await until('chat_updated', () => seen.chat_updated?.length === 1);
    assert.equal(seen.chat_updated[0].name, 'Launch 2');
    assert.deepEqual(seen.chat_updated[0].metadata, { topic: 'go' });

    await alice.addMembers(chat, ['carol']);
    await until('member_joined', () => seen.member_joined?.length === 1);
    assert.deepEqual(seen.member_joined[0], { type: 'member_joined', chat, user: 'carol', role: 'member' });
    await alice.setRole(chat, 'carol', 'admin');
    await until('role_changed', () => seen.role_changed?.length === 1);
    await alice.removeMember(chat, 'carol');
    await until('member_left', () => seen.member_left?.length === 1);
    await assert.rejects(alice.setRole(chat, 'carol', 'admin'), (e) => e.code === 'member_not_found');

    // Attachments: upload + PUT in one call, then a send that names it; the own echo is read back with its file.
    const id = await alice.uploadFile(chat, new TextEncoder().encode('hello'), { name: 'notes.txt', content_type: 'text/plain' });
    const withFile = await alice.send({ chat, body: 'notes', attachments: [id] });
    await until('bob gets the file', () => bob.got.get(chat)?.some((m) => m.seq === withFile.seq));
    const got = bob.got.get(chat).find((m) => m.seq === withFile.seq);
    assert.equal(got.attachments[0].name, 'notes.txt');
    await until('alice reads her file back', () => alice.got.get(chat)?.some((m) => m.seq === withFile.seq));
    assert.equal(alice.got.get(chat).find((m) => m.seq === withFile.seq).attachments[0].size, 5);
    const dl = await fetch(new URL(got.attachments[0].url, node.base));
    assert.equal(await dl.text(), 'hello');
    await assert.rejects(alice.upload(chat, { name: 'x.bin', content_type: 'text/plain', size: 0 }), (e) => e.code === 'invalid_attachment');

    // Search (the node's index catches up within about a second).
    const hits = await until('search hits', async () => {
      const r = await bob.search('fixed');
      return r.items.length > 0 ? r : undefined;
    });
    assert.equal(hits.items[0].seq, first.seq);
    assert.match(hits.items[0].highlight, /<mark>fixed<\/mark>/);

    // Devices and notification settings.
    const reg = await bob.registerDevice('pixel-7', 'fcm', FCM);
    assert.deepEqual({ device_id: reg.device_id, provider: reg.provider }, { device_id: 'pixel-7', provider: 'fcm' });
    assert.deepEqual((await rest.listDevices('bob')).map((d) => d.id), ['pixel-7']);
    await bob.unregisterDevice('pixel-7');
    await assert.rejects(bob.unregisterDevice('pixel-7'), (e) => e.code === 'device_not_found');
    const settings = await bob.notificationSettings({ push: true, chats: { [chat]: 'mentions' } });
    assert.deepEqual(settings.chats, { [chat]: 'mentions' });
    assert.deepEqual(await bob.notificationSettings(), settings);

    // A direct chat by recipients; then leaving a group.
    const dm = await alice.send({ recipients: ['bob'], body: 'psst' });
    await until('bob gets the direct message', () => bodies(bob, dm.chat).includes('psst'));
    await bob.leave(chat);
    assert.equal(bob.position(chat), undefined, 'no longer tracked');
  } finally {
    alice.close();
    bob.close();
  }
});

test('REST helpers: applications, chats, members, messages, tokens, webhooks, devices, settings; typed errors', async () => {
  const { rest, app } = await newApp(node.base);
  assert.equal(rest.appToken, app.token);
  assert.ok(app.secret);
  assert.equal((await rest.getApplication()).name, app.name);
  assert.equal((await rest.updateApplication({ description: 'd' })).description, 'd');

  const chat = await rest.createChat({ name: 'c', created_by: 'alice' });
  assert.equal((await rest.getChat(chat.number)).name, 'c');
  assert.equal((await rest.updateChat(chat.number, { name: 'c2' })).name, 'c2');
  assert.deepEqual((await rest.listChats()).map((c) => c.number), [chat.number]);
  await rest.putMember(chat.number, 'bob', { role: 'admin' });
  assert.deepEqual((await rest.listMembers(chat.number)).map((m) => [m.user_id, m.role]), [['alice', 'owner'], ['bob', 'admin']]);
  assert.deepEqual((await rest.userChats('bob')).map((c) => c.number), [chat.number]);

  const m1 = await rest.postMessage(chat.number, { body: 'one', sender: 'alice' }, { idempotencyKey: 'k1' });
  const again = await rest.postMessage(chat.number, { body: 'one', sender: 'alice' }, { idempotencyKey: 'k1' });
  assert.equal(again.number, m1.number);
  await assert.rejects(
    rest.postMessage(chat.number, { body: 'other', sender: 'alice' }, { idempotencyKey: 'k1' }),
    (e) => e instanceof WeftHttpError && e.status === 422 && e.code === 'idempotency_key_reused',
  );
  const m2 = await rest.postMessage(chat.number, { body: 'two', sender: 'bob', reply_to: m1.number });
  assert.equal((await rest.getMessage(chat.number, m1.number)).reply_count, 1);
  assert.deepEqual((await rest.replies(chat.number, m1.number)).map((m) => m.number), [m2.number]);
  await rest.editMessage(chat.number, m1.number, 'one!');
  assert.deepEqual((await rest.versions(chat.number, m1.number)).map((v) => v.body), ['one']);
  await rest.react(chat.number, m1.number, '👍', 'bob');
  assert.deepEqual(await rest.reactions(chat.number, m1.number), { '👍': ['bob'] });
  assert.equal((await rest.getMessage(chat.number, m1.number, { user: 'bob' })).reactions['👍'].me, true);
  await rest.unreact(chat.number, m1.number, '👍', 'bob');
  await rest.deleteMessage(chat.number, m2.number);
  await assert.rejects(rest.deleteMessage(chat.number, m2.number), (e) => e.status === 410 && e.code === 'message_deleted');
  assert.deepEqual((await history(rest, chat.number)).map((m) => m.number), [1, 2]);
  assert.deepEqual((await rest.listMessages(chat.number, { before: 2 })).map((m) => m.number), [1]);

  const grant = await rest.createAttachment(chat.number, { name: 'a.txt', content_type: 'text/plain', size: 2 });
  await rest.uploadBytes(grant.upload_url, new TextEncoder().encode('hi'), 'text/plain');
  const withFile = await rest.postMessage(chat.number, { body: 'file', attachments: [grant.id] });
  assert.equal(withFile.attachments[0].id, grant.id);

  const { token } = await rest.createUserToken('alice', { ttl_seconds: 60 });
  assert.deepEqual(await rest.me(token), { user: 'alice', app: app.id });
  await rest.rotateSecret();
  await assert.rejects(rest.me(token), (e) => e.status === 401 && e.code === 'invalid_token');

  const hook = await rest.createWebhook({ url: 'http://127.0.0.1:9/hook', events: ['message.created'] });
  assert.ok(hook.secret);
  assert.deepEqual((await rest.listWebhooks()).map((w) => w.id), [hook.id]);
  assert.equal((await rest.getWebhook(hook.id)).secret, undefined);
  assert.ok((await rest.updateWebhook(hook.id, { events: ['*'] })).events.includes('message.edited'));
  assert.notEqual((await rest.rotateWebhook(hook.id)).secret, hook.secret);
  const replay = await rest.replayWebhook(hook.id, { chat: chat.number });
  assert.equal(typeof replay.queued, 'number');
  assert.ok(Array.isArray((await rest.webhookDeliveries(hook.id)).deliveries));
  await rest.deleteWebhook(hook.id);
  await assert.rejects(rest.getWebhook(hook.id), (e) => e.status === 404 && e.code === 'webhook_not_found');

  await rest.putDevice('bob', 'tab', { provider: 'fcm', token: FCM });
  assert.deepEqual((await rest.listDevices('bob')).map((d) => d.id), ['tab']);
  await rest.deleteDevice('bob', 'tab');
  await assert.rejects(rest.deleteDevice('bob', 'tab'), (e) => e.status === 404 && e.code === 'device_not_found');
  const s = await rest.updateNotificationSettings('bob', { quiet_hours: { from: '22:00', to: '07:00', tz: 'Europe/Paris' } });
  assert.deepEqual(s.quiet_hours, { from: '22:00', to: '07:00', tz: 'Europe/Paris' });
  assert.deepEqual(await rest.getNotificationSettings('bob'), s);
  await assert.rejects(rest.updateNotificationSettings('bob', { chats: { 1: 'loud' } }), (e) => e.status === 422 && e.code === 'invalid_field');

  assert.deepEqual(await rest.presence('nobody'), { user_id: 'nobody', online: false, sessions: 0, last_seen: null });
  assert.equal(await rest.ready(), true);
  assert.match(String((await rest.openapi()).openapi), /^3\.1/);
  await assert.rejects(rest.forApp('nope').getApplication(), (e) => e.status === 404 && e.code === 'application_not_found');
});

test('history(): the newest page, then older pages while scrolling up, the same messages as the REST history', async () => {
  const { rest } = await newApp(node.base);
  const chat = (await rest.createChat({ created_by: 'alice' })).number;
  await rest.putMember(chat, 'bob');
  for (let i = 1; i <= 130; i++) await rest.postMessage(chat, { body: `m${i}`, sender: 'alice' });
  await rest.deleteMessage(chat, 100);
  const bob = clientFor(rest, 'bob', node.ws);
  const carol = clientFor(rest, 'carol', node.ws);
  try {
    await bob.connect();
    const newest = await bob.history(chat, { limit: 50 });
    assert.deepEqual(newest.items.map((m) => m.seq), Array.from({ length: 50 }, (_, i) => 81 + i), 'oldest first');
    assert.equal(newest.has_more, true);
    const rest50 = await rest.listMessages(chat, { per_page: 50 });
    assert.deepEqual(newest.items.map((m) => [m.seq, m.body]), rest50.reverse().map((m) => [m.number, m.body]));
    assert.equal(newest.items.find((m) => m.seq === 100).deleted, true, 'a tombstone keeps its place');
    // Scrolling up: each message once, until the first.
    let shown = newest.items.map((m) => m.seq);
    let page = newest;
    while (page.has_more) {
      page = await bob.history(chat, { before: shown[0], limit: 40 });
      const rest40 = await rest.listMessages(chat, { before: shown[0], per_page: 40 });
      assert.deepEqual(page.items.map((m) => m.seq), rest40.map((m) => m.number).reverse());
      shown = [...page.items.map((m) => m.seq), ...shown];
    }
    assert.deepEqual(shown, Array.from({ length: 130 }, (_, i) => i + 1));
    assert.equal(bob.position(chat), undefined, 'reading history tracks nothing');
    assert.equal(bodies(bob, chat).length, 0, 'and emits no message');
    await carol.connect();
    await assert.rejects(carol.history(chat), (e) => e instanceof WeftError && e.code === 'not_a_member');
  } finally {
    bob.close();
    carol.close();
  }
});
