// The demo chat: sign in, list chats, open one, talk. The WebSocket side
// (reconnects, resume, gaps, retries) is the weft client's, behind chat.js;
// this file keeps what the screen shows and draws it.
import { Connection, signIn, fetchChats, fetchChat } from './chat.js';
import { h, paintAvatar, shortTime, longTime, size, highlight, chatTitle, peerOf, QUICK_REACTIONS } from './view.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const TYPING_SHOWN_MS = 4000;
const USER_ID = /^[A-Za-z0-9_.@:-]{1,128}$/;

/** Everything the screen shows. */
const state = {
  me: null,
  session: null, // {token, expires_at, attachments}
  conn: null,
  chats: new Map(), // number -> Chat (below)
  presence: new Map(), // user -> online
  open: null, // the open chat's number
  reply: null, // {seq, sender, body}
  editing: null, // seq
  files: [], // File objects waiting to be sent
};

/** A chat as the page knows it. */
function chatState(info) {
  return {
    info, // from /demo/api: number, kind, name, members, last, read, messages_count
    messages: new Map(), // seq -> message
    pending: new Map(), // client_msg_id -> pending message
    elements: new Map(), // key -> <li>
    oldest: null,
    newest: 0,
    loaded: false,
    hasOlder: true,
    loadingOlder: false,
    unread: Math.max(0, (info.messages_count || 0) - (info.read || 0)),
    receipts: new Map(), // user -> {delivered, read}
    typing: new Map(), // user -> timer
    readSent: info.read || 0,
  };
}

// ---------------------------------------------------------------- sign in

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const user = $('signin-user').value.trim();
  const error = $('signin-error');
  error.textContent = '';
  if (!USER_ID.test(user)) {
    error.textContent = 'A user id is 1 to 128 letters, digits and _ . @ : -';
    $('signin-user').setAttribute('aria-invalid', 'true');
    $('signin-user').focus();
    return;
  }
  $('signin-user').removeAttribute('aria-invalid');
  const button = event.submitter || $('signin-form').querySelector('button');
  button.disabled = true;
  try {
    await start(user);
  } catch (e) {
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
});

$('signout').addEventListener('click', () => {
  sessionStorage.removeItem('weft-demo-user');
  state.conn?.close();
  location.reload();
});

async function start(user) {
  state.session = await signIn(user);
  state.me = state.session.user;
  sessionStorage.setItem('weft-demo-user', state.me);
  $('signin').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = state.me;
  paintAvatar($('me-avatar'), state.me, false);
  document.title = `${state.me} · weft demo chat`;
  if (!state.session.attachments) {
    const attach = document.querySelector('.attach');
    attach.title = 'Attachments are off on this node (no attachment storage)';
  }
  state.conn = new Connection({
    getToken: async () => {
      state.session = await signIn(state.me);
      return state.session.token;
    },
    token: state.session.token,
  });
  wire(state.conn);
  state.conn.start();
  await refreshChats();
  const wanted = Number(new URLSearchParams(location.hash.slice(1)).get('chat'));
  if (wanted && state.chats.has(wanted)) openChat(wanted);
  else $('search-input').focus();
}

// ---------------------------------------------------------------- events

function wire(conn) {
  conn.on('status', ({ state: s }) => {
    const el = $('status');
    const label = { connected: 'Online', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Offline', idle: 'Offline' }[s] || s;
    el.textContent = label;
    el.classList.toggle('online', s === 'connected');
    el.classList.toggle('offline', s !== 'connected');
    if (s === 'connected') {
      // Back online: what changed while away (new chats, members) comes from the API.
      refreshChats().catch(() => {});
    }
  });
  conn.on('message', (m) => onMessage(m, true));
  conn.on('typing', ({ chat, user }) => onTyping(chat, user));
  conn.on('presence', ({ user, online }) => {
    state.presence.set(user, online);
    for (const c of state.chats.values()) {
      const member = c.info.members?.find((x) => x.user === user);
      if (member) member.online = online;
    }
    renderChatList();
    if (state.open) renderHeader(state.chats.get(state.open));
  });
  conn.on('receipt', ({ chat, user, kind, seq }) => {
    const c = state.chats.get(chat);
    if (!c) return;
    const r = c.receipts.get(user) || { delivered: 0, read: 0 };
    if (kind === 'read') r.read = Math.max(r.read, seq);
    r.delivered = Math.max(r.delivered, seq);
    c.receipts.set(user, r);
    if (user === state.me && kind === 'read') {
      c.readSent = Math.max(c.readSent, seq);
      c.unread = Math.max(0, c.newest - c.readSent);
      renderChatList();
    }
    if (chat === state.open) renderReceipts(c);
  });
  conn.on('message_edited', ({ chat, seq, body, edited_at }) => {
    const c = state.chats.get(chat);
    const m = c?.messages.get(seq);
    if (!m) return;
    Object.assign(m, { body, edited_at });
    redraw(c, m);
  });
  conn.on('message_deleted', ({ chat, seq, deleted_at }) => {
    const c = state.chats.get(chat);
    const m = c?.messages.get(seq);
    if (!m) return;
    Object.assign(m, { body: null, deleted: true, deleted_at, reactions: undefined, attachments: undefined });
    redraw(c, m);
  });
  conn.on('reaction', ({ chat, seq, user, emoji, op, count }) => {
    const c = state.chats.get(chat);
    const m = c?.messages.get(seq);
    if (!m) return;
    m.reactions = { ...(m.reactions || {}) };
    const mine = user === state.me ? op === 'add' : m.reactions[emoji]?.me || false;
    if (count > 0) m.reactions[emoji] = { count, me: mine };
    else delete m.reactions[emoji];
    redraw(c, m);
  });
  conn.on('thread_updated', ({ chat, seq, reply_count }) => {
    const m = state.chats.get(chat)?.messages.get(seq);
    if (m) m.reply_count = reply_count;
  });
  const changedMembers = ({ chat }) => {
    if (state.chats.has(chat)) reloadChat(chat);
    else refreshChats();
  };
  conn.on('member_joined', changedMembers);
  conn.on('member_left', ({ chat, user }) => {
    if (user === state.me) {
      state.chats.delete(chat);
      if (state.open === chat) closeChat();
      renderChatList();
    } else changedMembers({ chat });
  });
  conn.on('role_changed', changedMembers);
  conn.on('chat_updated', ({ chat, name, description }) => {
    const c = state.chats.get(chat);
    if (!c) return;
    Object.assign(c.info, { name, description });
    renderChatList();
    if (state.open === chat) renderHeader(c);
  });
  conn.on('error', ({ message }) => showComposerError(message));
}

/** A message from the server (live, a catch-up, or history). */
function onMessage(m, live) {
  let c = state.chats.get(m.chat);
  if (!c) {
    // A chat we did not know: someone started it with us.
    refreshChats().then(() => {
      if (state.chats.has(m.chat)) onMessage(m, live);
    }).catch(() => {});
    return;
  }
  const known = c.messages.has(m.seq);
  c.messages.set(m.seq, { ...c.messages.get(m.seq), ...m });
  if (m.client_msg_id && c.pending.has(m.client_msg_id)) {
    dropPending(c, m.client_msg_id);
  }
  const isNew = m.seq > c.newest;
  c.newest = Math.max(c.newest, m.seq);
  if (c.oldest === null || m.seq < c.oldest) c.oldest = m.seq;
  if (isNew) {
    c.info.last = { seq: m.seq, sender: m.sender, body: m.deleted ? null : m.body, sent_at: m.sent_at,
      deleted: Boolean(m.deleted), attachments: (m.attachments || []).length };
    c.info.messages_count = Math.max(c.info.messages_count || 0, m.seq);
    if (m.sender !== state.me && !(state.open === m.chat && pageVisible()) && m.seq > c.readSent) {
      c.unread = Math.max(0, c.newest - c.readSent);
    }
    clearTyping(c, m.sender);
  }
  if (state.open === m.chat && c.loaded) {
    frame.draw.set(m.seq, { chat: c, fresh: live && !known });
    if (m.sender === state.me) frame.stick = true;
  }
  frame.list = true;
  schedule();
}

/**
 * What the next animation frame draws: messages arrive one event each (hundreds a
 * second in a busy chat), the screen changes once per frame, with one layout read.
 */
const frame = { pending: false, draw: new Map(), stick: false, list: false };

function schedule() {
  if (frame.pending) return;
  frame.pending = true;
  requestAnimationFrame(flush);
}

function flush() {
  frame.pending = false;
  const c = state.chats.get(state.open);
  const todo = [...frame.draw.entries()];
  frame.draw.clear();
  if (c && todo.length) {
    const stick = frame.stick || nearBottom();
    for (const [seq, { chat, fresh }] of todo) {
      const m = chat === c ? c.messages.get(seq) : null;
      if (m) draw(c, m, fresh && todo.length < 10);
    }
    if (stick) scrollToBottom();
    if (todo.some(([seq]) => c.messages.get(seq)?.sender === state.me)) renderReceipts(c);
    markRead(c);
  }
  frame.stick = false;
  if (frame.list) {
    frame.list = false;
    renderChatList();
  }
}

function onTyping(chat, user) {
  const c = state.chats.get(chat);
  if (!c || user === state.me) return;
  clearTimeout(c.typing.get(user));
  c.typing.set(user, setTimeout(() => clearTyping(c, user), TYPING_SHOWN_MS));
  renderTyping();
}

function clearTyping(c, user) {
  if (!c.typing.has(user)) return;
  clearTimeout(c.typing.get(user));
  c.typing.delete(user);
  renderTyping();
}

// ---------------------------------------------------------------- chats

/** The chat list from the API; calls made while one runs share one more run after it. */
let refreshing = null;
let refreshAgain = false;
function refreshChats() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await loadChats();
    } while (refreshAgain);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function loadChats() {
  const chats = await fetchChats(state.session.token);
  for (const info of chats) {
    const c = state.chats.get(info.number);
    if (c) {
      const { last, messages_count } = c.info;
      Object.assign(c.info, info);
      // What the page already holds is at least as new as what the API listed.
      if (last && (!info.last || last.seq > info.last.seq)) Object.assign(c.info, { last, messages_count });
    } else {
      state.chats.set(info.number, chatState(info));
      state.conn.track(info.number, info.messages_count || 0);
    }
  }
  renderChatList();
}

function sortedChats() {
  const at = (c) => c.info.last?.sent_at || c.info.created_at || '';
  return [...state.chats.values()].sort((a, b) => (at(b) > at(a) ? 1 : at(b) < at(a) ? -1 : 0));
}

function renderChatList() {
  const list = $('chat-list');
  const items = sortedChats().map((c) => {
    const title = chatTitle(c.info, state.me);
    const peer = peerOf(c.info, state.me);
    const avatar = h('span', { class: 'avatar', 'aria-hidden': 'true' });
    paintAvatar(avatar, peer || title, peer && state.presence.get(peer));
    const last = c.info.last;
    const preview = !last ? 'No messages yet'
      : last.deleted ? 'Message deleted'
        : `${last.sender === state.me ? 'You: ' : c.info.kind === 'group' ? `${last.sender}: ` : ''}${last.body || (last.attachments ? 'Attachment' : '')}`;
    const unread = c.number === state.open ? 0 : c.unread;
    const label = [title, peer && state.presence.get(peer) ? 'online' : null,
      unread ? `${unread} unread` : null, preview].filter(Boolean).join(', ');
    return h('li', {},
      h('button', { type: 'button', 'aria-current': c.info.number === state.open ? 'true' : 'false',
        'aria-label': label, dataset: { chat: c.info.number }, onclick: () => openChat(c.info.number) },
      avatar,
      h('span', { class: 'chat-item-text' },
        h('span', { class: 'chat-item-top' },
          h('span', { class: 'chat-item-name', text: title }),
          h('span', { class: 'chat-item-time', text: shortTime(last?.sent_at) })),
        h('span', { class: 'chat-item-last', text: preview })),
      unread ? h('span', { class: 'badge', text: String(unread) }) : null));
  });
  // Redrawing must not take the focus away from someone tabbing through the list.
  const focused = document.activeElement?.closest('#chat-list button')?.dataset.chat;
  list.replaceChildren(...items);
  if (focused) list.querySelector(`[data-chat="${focused}"]`)?.focus();
  $('chat-list-empty').hidden = items.length > 0;
}

async function reloadChat(number) {
  try {
    const info = await fetchChat(state.session.token, number);
    const c = state.chats.get(number);
    if (!c) return refreshChats();
    Object.assign(c.info, { ...info, last: c.info.last || info.last });
    for (const m of info.members) {
      state.presence.set(m.user, m.online);
      // A receipt event may have overtaken this answer: positions only move forward.
      const known = c.receipts.get(m.user) || { delivered: 0, read: 0 };
      c.receipts.set(m.user, { delivered: Math.max(known.delivered, m.delivered), read: Math.max(known.read, m.read) });
    }
    renderChatList();
    if (state.open === number) {
      renderHeader(c);
      renderReceipts(c);
    }
  } catch (e) {
    if (e.code === 'not_a_member' || e.code === 'chat_not_found') {
      state.chats.delete(number);
      if (state.open === number) closeChat();
      renderChatList();
    }
  }
}

async function openChat(number) {
  const c = state.chats.get(number);
  if (!c) return;
  const fromList = Boolean(document.activeElement?.closest('#chat-list, #search-list'));
  if (state.open !== number) {
    cancelContext();
    state.files = [];
    renderFiles();
  }
  state.open = number;
  history.replaceState(null, '', `#chat=${number}`);
  $('app').classList.add('in-chat');
  $('composer').hidden = false;
  c.unread = 0;
  renderChatList();
  renderHeader(c);
  renderTyping();
  const list = $('message-list');
  list.replaceChildren();
  c.elements.clear();
  $('history-status').textContent = '';
  if (!c.loaded) {
    await loadLatest(c);
  }
  for (const m of [...c.messages.values()].sort((a, b) => a.seq - b.seq)) draw(c, m, false);
  for (const p of c.pending.values()) draw(c, p, false);
  renderReceipts(c);
  scrollToBottom();
  reloadChat(number);
  markRead(c);
  if (fromList || window.matchMedia('(max-width: 720px)').matches) {
    $('composer-input').focus();
  }
}

function closeChat() {
  state.open = null;
  history.replaceState(null, '', '#');
  $('app').classList.remove('in-chat');
  $('composer').hidden = true;
  $('message-list').replaceChildren();
  $('chat-title').textContent = 'Pick a chat';
  $('chat-subtitle').textContent = '';
  renderChatList();
}

$('back').addEventListener('click', () => {
  const number = state.open;
  closeChat();
  $('chat-list').querySelector(`[data-chat="${number}"]`)?.focus();
});

/** The newest page of a chat. */
async function loadLatest(c) {
  try {
    const page = await state.conn.history(c.info.number, undefined, PAGE);
    for (const m of page.items) acceptHistory(c, m);
    c.hasOlder = page.has_more;
    c.loaded = true;
  } catch (e) {
    $('history-status').textContent = `Could not load messages: ${e.message}`;
  }
}

function acceptHistory(c, m) {
  c.messages.set(m.seq, { ...c.messages.get(m.seq), ...m });
  c.newest = Math.max(c.newest, m.seq);
  if (c.oldest === null || m.seq < c.oldest) c.oldest = m.seq;
}

/** Older messages, when the list is scrolled to its top. */
async function loadOlder(c) {
  if (c.loadingOlder || !c.hasOlder || !c.loaded) return;
  c.loadingOlder = true;
  const status = $('history-status');
  status.textContent = 'Loading older messages…';
  const box = $('messages');
  box.setAttribute('aria-busy', 'true');
  try {
    const before = c.oldest ?? 1;
    const page = await state.conn.history(c.info.number, before, PAGE);
    const older = page.items.filter((m) => m.seq < before);
    const height = box.scrollHeight;
    for (const m of older) acceptHistory(c, m);
    c.hasOlder = page.has_more && older.length > 0;
    if (state.open === c.info.number) {
      for (const m of older.sort((a, b) => a.seq - b.seq)) draw(c, m, false);
      box.scrollTop += box.scrollHeight - height;
    }
    status.textContent = c.hasOlder ? '' : 'This is the start of the chat.';
  } catch (e) {
    status.textContent = `Could not load older messages: ${e.message}`;
  } finally {
    c.loadingOlder = false;
    box.removeAttribute('aria-busy');
  }
}

$('messages').addEventListener('scroll', () => {
  const c = state.chats.get(state.open);
  if (c && $('messages').scrollTop < 120) loadOlder(c);
}, { passive: true });

// ---------------------------------------------------------------- drawing messages

function keyOf(m) {
  return m.seq ? `s${m.seq}` : `p${m.client_msg_id}`;
}

function orderOf(m) {
  return m.seq ? m.seq : Number.MAX_SAFE_INTEGER - 1000 + (m.order || 0);
}

/** Puts one message in the open chat's list, in number order (pending ones last). */
function draw(c, m, fresh) {
  const key = keyOf(m);
  const el = messageElement(c, m);
  el.dataset.order = String(orderOf(m));
  if (fresh) el.classList.add('fresh');
  const old = c.elements.get(key);
  if (old) {
    old.replaceWith(el);
  } else {
    const list = $('message-list');
    const order = orderOf(m);
    let next = null;
    for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
      if (Number(node.dataset.order) > order) next = node;
      else break;
    }
    list.insertBefore(el, next);
  }
  c.elements.set(key, el);
  regroup(el);
  if (el.nextElementSibling) regroup(el.nextElementSibling);
}

function redraw(c, m) {
  if (state.open === c.info.number && c.elements.has(keyOf(m))) draw(c, m, false);
  if (c.info.last?.seq === m.seq) {
    c.info.last = { ...c.info.last, body: m.deleted ? null : m.body, deleted: Boolean(m.deleted) };
    renderChatList();
  }
}

/** Consecutive messages of one sender within five minutes share one header. */
function regroup(el) {
  const prev = el.previousElementSibling;
  const grouped = prev && prev.dataset.sender === el.dataset.sender
    && Math.abs(Number(el.dataset.at) - Number(prev.dataset.at)) < 5 * 60 * 1000;
  el.classList.toggle('grouped', Boolean(grouped));
}

function messageElement(c, m) {
  const mine = m.sender === state.me;
  const deleted = Boolean(m.deleted);
  const classes = ['msg', mine && 'mine', deleted && 'deleted', m.pending && 'pending', m.failed && 'failed']
    .filter(Boolean).join(' ');
  const at = m.sent_at ? Date.parse(m.sent_at) : Date.now();
  const label = `${mine ? 'You' : m.sender || 'the app'}, ${longTime(m.sent_at)}`;
  const bubble = h('div', { class: 'bubble' });
  if (m.reply_to && !deleted) {
    const quoted = c.messages.get(m.reply_to);
    bubble.append(h('span', { class: 'quote', text: quoted
      ? `${quoted.sender}: ${quoted.deleted ? 'deleted message' : quoted.body}` : `Reply to #${m.reply_to}` }));
  }
  bubble.append(deleted ? 'This message was deleted' : m.body || '');
  if (m.edited_at && !deleted) bubble.append(h('span', { class: 'edited', text: '(edited)', title: longTime(m.edited_at) }));
  if (m.attachments?.length && !deleted) {
    bubble.append(h('div', { class: 'files' }, m.attachments.map((f) => (f.content_type?.startsWith('image/') && f.url
      ? h('a', { href: f.url, target: '_blank', rel: 'noopener' }, h('img', { src: f.url, alt: f.name, loading: 'lazy' }))
      : h('a', { href: f.url, target: '_blank', rel: 'noopener', download: f.name, text: `${f.name} (${size(f.size)})` })))));
  }
  const reactions = Object.entries(m.reactions || {}).filter(([, r]) => r.count > 0);
  const li = h('li', {
    class: classes, tabindex: '-1', 'aria-label': label,
    dataset: { seq: m.seq || '', sender: m.sender || '', at: String(at) },
  },
  h('span', { class: 'msg-meta' }, h('strong', { text: mine ? 'You' : m.sender || 'app' }), ' · ',
    h('time', { datetime: m.sent_at || '', text: shortTime(m.sent_at) || 'sending…' })),
  bubble,
  reactions.length ? h('div', { class: 'reactions' }, reactions.map(([emoji, r]) => h('button', {
    type: 'button', class: 'reaction', 'aria-pressed': r.me ? 'true' : 'false', tabindex: '-1',
    'aria-label': `${emoji} ${r.count}${r.me ? ', including you' : ''}`,
    onclick: () => toggleReaction(c, m, emoji),
  }, `${emoji} ${r.count}`))) : null,
  m.failed ? h('p', { class: 'error', text: m.failed }) : null,
  mine && m.seq ? h('p', { class: 'receipt', dataset: { receipt: m.seq } }) : null,
  null);
  // The actions are made when first needed (pointer or focus): a long chat holds
  // thousands of messages, most never acted on.
  if (m.seq && !deleted) {
    li.actions = () => actionsFor(c, m, mine);
    li.addEventListener('pointerenter', () => withActions(li), { once: true });
  }
  return li;
}

function withActions(li) {
  if (li.actions && !li.querySelector('.actions')) li.append(li.actions());
}

function actionsFor(c, m, mine) {
  const button = (text, label, onclick) => h('button', { type: 'button', tabindex: '-1', 'aria-label': label, onclick }, text);
  return h('div', { class: 'actions', role: 'group', 'aria-label': 'Message actions' },
    button('Reply', 'Reply', () => startReply(c, m)),
    QUICK_REACTIONS.map((emoji) => button(emoji, `React ${emoji}`, () => toggleReaction(c, m, emoji))),
    mine ? button('Edit', 'Edit', () => startEdit(c, m)) : null,
    mine ? button('Delete', 'Delete', () => deleteMessage(c, m)) : null);
}

/** "Seen by bob" under the newest of my messages others have read, "Delivered" when only delivered. */
function renderReceipts(c) {
  if (state.open !== c.info.number) return;
  for (const el of $('message-list').querySelectorAll('.receipt')) el.textContent = '';
  const others = [...c.receipts.entries()].filter(([user]) => user !== state.me);
  const mine = [...c.messages.values()].filter((m) => m.sender === state.me && !m.deleted).sort((a, b) => b.seq - a.seq);
  if (!mine.length) return;
  const newest = mine[0];
  const readers = others.filter(([, r]) => r.read >= newest.seq).map(([u]) => u);
  const delivered = others.filter(([, r]) => r.delivered >= newest.seq).map(([u]) => u);
  const el = $('message-list').querySelector(`[data-receipt="${newest.seq}"]`);
  if (!el) return;
  if (readers.length) {
    el.textContent = c.info.kind === 'direct' ? 'Seen' : `Seen by ${readers.join(', ')}`;
  } else if (delivered.length) {
    el.textContent = 'Delivered';
  } else {
    el.textContent = 'Sent';
  }
}

// ---------------------------------------------------------------- header, typing

function renderHeader(c) {
  const title = chatTitle(c.info, state.me);
  const peer = peerOf(c.info, state.me);
  $('chat-title').textContent = title;
  paintAvatar($('chat-avatar'), peer || title, peer && state.presence.get(peer));
  let subtitle;
  if (peer) {
    subtitle = state.presence.get(peer) ? 'online' : 'offline';
  } else {
    const members = c.info.members || [];
    const online = members.filter((m) => m.user !== state.me && state.presence.get(m.user)).length;
    subtitle = `${members.length} members${online ? `, ${online} online` : ''}`;
  }
  $('chat-subtitle').textContent = subtitle;
}

function renderTyping() {
  const c = state.chats.get(state.open);
  const users = c ? [...c.typing.keys()] : [];
  const el = $('typing');
  el.textContent = users.length === 0 ? ''
    : users.length === 1 ? `${users[0]} is typing…`
      : `${users.slice(0, -1).join(', ')} and ${users.at(-1)} are typing…`;
}

// ---------------------------------------------------------------- reading

function pageVisible() {
  return document.visibilityState === 'visible';
}

function nearBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

let readTimer = null;
/** Tells the others how far I read, once the newest message is on screen (at most every 300 ms). */
function markRead(c) {
  if (!pageVisible() || state.open !== c.info.number) return;
  if (c.newest <= c.readSent) return;
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (state.open !== c.info.number || c.newest <= c.readSent) return;
    const seq = c.newest;
    c.readSent = seq;
    c.unread = 0;
    state.conn.read(c.info.number, seq).catch(() => { c.readSent = Math.min(c.readSent, seq - 1); });
    renderChatList();
  }, 300);
}

document.addEventListener('visibilitychange', () => {
  const c = state.chats.get(state.open);
  if (c && pageVisible()) markRead(c);
});

// ---------------------------------------------------------------- composing

const input = $('composer-input');
let pendingOrder = 0;

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  } else if (event.key === 'Escape') {
    cancelContext();
  } else if (event.key === 'ArrowUp' && !input.value) {
    // Up in an empty box edits my last message, as in most chats.
    const c = state.chats.get(state.open);
    const last = c && [...c.messages.values()].filter((m) => m.sender === state.me && !m.deleted).sort((a, b) => b.seq - a.seq)[0];
    if (last) {
      event.preventDefault();
      startEdit(c, last);
    }
  }
});

let lastTyping = 0;
input.addEventListener('input', () => {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 144)}px`;
  if (state.open && input.value && Date.now() - lastTyping > 2000 && !state.editing) {
    lastTyping = Date.now();
    state.conn.typing(state.open);
  }
});

$('composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const c = state.chats.get(state.open);
  if (!c) return;
  const body = input.value.trim();
  showComposerError('');
  if (state.editing) {
    const seq = state.editing;
    if (!body) return;
    cancelContext();
    input.value = '';
    try {
      await state.conn.edit(c.info.number, seq, body);
      const m = c.messages.get(seq);
      if (m) {
        Object.assign(m, { body, edited_at: new Date().toISOString() });
        redraw(c, m);
      }
    } catch (e) {
      showComposerError(`Could not edit: ${e.message}`);
    }
    return;
  }
  if (!body && state.files.length === 0) return;
  const files = state.files;
  const reply = state.reply;
  state.files = [];
  renderFiles();
  cancelContext();
  input.value = '';
  input.style.height = 'auto';
  const clientMsgId = `demo-${crypto.randomUUID()}`;
  const pending = {
    chat: c.info.number, client_msg_id: clientMsgId, sender: state.me, body: body || files.map((f) => f.name).join(', '),
    reply_to: reply?.seq, pending: true, order: pendingOrder++,
  };
  c.pending.set(clientMsgId, pending);
  draw(c, pending, true);
  scrollToBottom();
  try {
    let attachments;
    if (files.length) attachments = await uploadAll(c, files);
    const ack = await state.conn.send({ chat: c.info.number, body: pending.body, clientMsgId, replyTo: reply?.seq, attachments });
    // The client echoes the message itself (once, in order); this only drops the placeholder.
    dropPending(c, clientMsgId);
    if (!c.messages.has(ack.seq) && !attachments) {
      onMessage({ chat: c.info.number, seq: ack.seq, sender: state.me, body: pending.body, sent_at: new Date().toISOString(),
        client_msg_id: clientMsgId, reply_to: reply?.seq ?? null }, true);
    }
    renderReceipts(c);
  } catch (e) {
    pending.failed = `Not sent: ${e.message}`;
    pending.pending = false;
    draw(c, pending, false);
  }
});

function dropPending(c, clientMsgId) {
  c.pending.delete(clientMsgId);
  const key = `p${clientMsgId}`;
  c.elements.get(key)?.remove();
  c.elements.delete(key);
}

function showComposerError(text) {
  $('composer-error').textContent = text;
}

function startReply(c, m) {
  state.editing = null;
  state.reply = { seq: m.seq, sender: m.sender, body: m.body };
  $('composer-context').hidden = false;
  $('composer-context-text').textContent = `Replying to ${m.sender}: ${m.body}`;
  input.focus();
}

function startEdit(c, m) {
  state.reply = null;
  state.editing = m.seq;
  $('composer-context').hidden = false;
  $('composer-context-text').textContent = 'Editing your message (Escape cancels)';
  input.value = m.body || '';
  input.focus();
}

function cancelContext() {
  if (state.editing) input.value = '';
  state.reply = null;
  state.editing = null;
  $('composer-context').hidden = true;
}

$('composer-context-cancel').addEventListener('click', () => {
  cancelContext();
  input.focus();
});

async function deleteMessage(c, m) {
  if (!window.confirm('Delete this message for everyone?')) return;
  try {
    await state.conn.remove(c.info.number, m.seq);
    Object.assign(m, { body: null, deleted: true, reactions: undefined, attachments: undefined });
    redraw(c, m);
    renderReceipts(c);
  } catch (e) {
    showComposerError(`Could not delete: ${e.message}`);
  }
}

async function toggleReaction(c, m, emoji) {
  const had = m.reactions?.[emoji]?.me;
  try {
    if (had) await state.conn.unreact(c.info.number, m.seq, emoji);
    else await state.conn.react(c.info.number, m.seq, emoji);
    m.reactions = { ...(m.reactions || {}) };
    const count = (m.reactions[emoji]?.count || 0) + (had ? -1 : 1);
    if (count > 0) m.reactions[emoji] = { count, me: !had };
    else delete m.reactions[emoji];
    redraw(c, m);
    c.elements.get(keyOf(m))?.focus();
  } catch (e) {
    showComposerError(`Could not react: ${e.message}`);
  }
}

// ---------------------------------------------------------------- attachments

$('composer-file').addEventListener('change', () => {
  const chosen = [...$('composer-file').files];
  $('composer-file').value = '';
  if (!state.session.attachments) {
    showComposerError('This node keeps no attachments (no attachment storage is configured), so files cannot be sent.');
    return;
  }
  const max = state.session.attachments.max_size;
  const tooBig = chosen.filter((f) => f.size > max || f.size === 0);
  if (tooBig.length) showComposerError(`${tooBig.map((f) => f.name).join(', ')}: files must be 1 byte to ${size(max)}.`);
  state.files.push(...chosen.filter((f) => f.size <= max && f.size > 0));
  renderFiles();
  input.focus();
});

function renderFiles() {
  $('composer-files').replaceChildren(...state.files.map((f, i) => h('span', { class: 'file-chip' },
    `${f.name} (${size(f.size)}) `,
    h('button', { type: 'button', class: 'ghost', 'aria-label': `Remove ${f.name}`, onclick: () => {
      state.files.splice(i, 1);
      renderFiles();
    } }, 'Remove'))));
}

async function uploadAll(c, files) {
  const ids = [];
  for (const file of files) ids.push(await state.conn.upload(c.info.number, file));
  return ids;
}

// ---------------------------------------------------------------- new chat

$('new-chat-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = $('new-chat-error');
  error.textContent = '';
  const to = $('new-chat-to').value.split(/[\s,]+/).filter(Boolean);
  const body = $('new-chat-body').value.trim() || '👋';
  const bad = to.filter((u) => !USER_ID.test(u));
  if (to.length === 0 || bad.length) {
    error.textContent = to.length === 0 ? 'Name at least one user id.' : `Not a user id: ${bad.join(', ')}`;
    $('new-chat-to').setAttribute('aria-invalid', 'true');
    $('new-chat-to').focus();
    return;
  }
  if (to.every((u) => u === state.me)) {
    error.textContent = 'Name someone other than yourself.';
    return;
  }
  $('new-chat-to').removeAttribute('aria-invalid');
  try {
    const ack = await state.conn.send({ recipients: to, body, clientMsgId: `demo-${crypto.randomUUID()}` });
    $('new-chat-to').value = '';
    $('new-chat-body').value = '';
    $('new-chat').open = false;
    await refreshChats();
    await openChat(ack.chat);
  } catch (e) {
    error.textContent = e.message;
  }
});

// ---------------------------------------------------------------- search

$('search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const query = $('search-input').value.trim();
  if (!query) return;
  const list = $('search-list');
  $('search-results').hidden = false;
  list.replaceChildren(h('li', { class: 'hint', text: 'Searching…' }));
  try {
    const found = await state.conn.search(query);
    list.replaceChildren(...(found.items.length ? found.items.map((hit) => {
      const c = state.chats.get(hit.chat);
      const title = c ? chatTitle(c.info, state.me) : `Chat ${hit.chat}`;
      return h('li', {}, h('button', { type: 'button', class: 'search-hit', onclick: () => openChat(hit.chat) },
        h('span', { class: 'chat-item-text' },
          h('span', { class: 'chat-item-top' },
            h('span', { class: 'chat-item-name', text: `${hit.sender} in ${title}` }),
            h('span', { class: 'chat-item-time', text: shortTime(hit.created_at) })),
          h('span', { class: 'chat-item-last' }, highlight(hit.highlight || hit.body)))));
    }) : [h('li', { class: 'hint', text: 'No messages match.' })]));
  } catch (e) {
    const text = e.code === 'search_unavailable' ? 'Search is off on this node.' : `Search failed: ${e.message}`;
    list.replaceChildren(h('li', { class: 'hint', text }));
  }
});

$('search-close').addEventListener('click', () => {
  $('search-results').hidden = true;
  $('search-input').value = '';
  $('search-input').focus();
});

// ---------------------------------------------------------------- keyboard in the message list

$('messages').addEventListener('keydown', (event) => {
  const items = [...$('message-list').children];
  if (!items.length) return;
  const current = document.activeElement?.closest('.msg');
  let index = current ? items.indexOf(current) : items.length;
  if (event.key === 'ArrowUp') index = Math.max(0, index - 1);
  else if (event.key === 'ArrowDown') index = Math.min(items.length - 1, index + 1);
  else if (event.key === 'Home') index = 0;
  else if (event.key === 'End') index = items.length - 1;
  else if (event.key === 'Escape') {
    input.focus();
    return;
  } else return;
  event.preventDefault();
  items[index].focus();
  if (index === 0) {
    const c = state.chats.get(state.open);
    if (c) loadOlder(c);
  }
});

// Only the focused message's buttons are in the tab order.
$('message-list').addEventListener('focusin', (event) => {
  const msg = event.target.closest('.msg');
  for (const el of $('message-list').querySelectorAll('.msg.active')) {
    if (el !== msg) {
      el.classList.remove('active');
      el.querySelectorAll('button').forEach((b) => b.setAttribute('tabindex', '-1'));
    }
  }
  if (msg) {
    withActions(msg);
    msg.classList.add('active');
    msg.querySelectorAll('button').forEach((b) => b.setAttribute('tabindex', '0'));
  }
});

// ---------------------------------------------------------------- start

const remembered = sessionStorage.getItem('weft-demo-user');
if (remembered) {
  $('signin-user').value = remembered;
  start(remembered).catch((e) => {
    $('signin-error').textContent = e.message;
  });
} else {
  $('signin-user').focus();
}
