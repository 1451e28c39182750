// The demo's two links to the node: /demo/api (sign in, chats, members) over
// fetch, and the WebSocket through the weft client, which does reconnects,
// resume, gap filling, retried sends and rate-limit back-off.
import { WeftClient } from './weft-client.js';

/** An answer of /demo/api that is an error: `code` is the server's. */
export class DemoError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function api(path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/demo/api/${path}`, { method: body ? 'POST' : 'GET', headers, body: body && JSON.stringify(body) });
  } catch {
    throw new DemoError('network', 'The node cannot be reached. Is it running?', 0);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's page, say.
  }
  if (!res.ok) {
    const error = json?.error;
    throw new DemoError(error?.code || 'http', error?.message || `The node answered ${res.status}`, res.status);
  }
  return json;
}

/** `{user, token, expires_at, attachments: {max_size} | null}` for a user id. */
export function signIn(user) {
  return api('session', { body: { user } });
}

/** The signed-in user's chats, newest activity first. */
export async function fetchChats(token) {
  return (await api('chats', { token })).chats;
}

/** One chat with every member's role, presence and receipts. */
export function fetchChat(token, number) {
  return api(`chats/${number}`, { token });
}

/** The user's WebSocket session, with the names the page uses. */
export class Connection {
  constructor({ token, getToken }) {
    let first = token;
    this.client = new WeftClient({
      url: location.origin,
      // The first connect uses the session's token; later ones (4001, expiry) sign in again.
      getToken: async () => {
        if (first) {
          const t = first;
          first = null;
          return t;
        }
        return getToken();
      },
    });
  }

  /** `event` → `listener(payload)`; `status` gets `{state}`. */
  on(event, listener) {
    if (event === 'status') return this.client.on('state', (state) => listener({ state }));
    return this.client.on(event, listener);
  }

  start() {
    this.client.connect().catch(() => {});
    // Back on the network: try at once rather than at the end of a backoff.
    window.addEventListener('online', () => {
      if (this.client.state === 'reconnecting') this.client.reconnect();
    });
  }

  close() {
    this.client.close();
  }

  get state() {
    return this.client.state;
  }

  /** Follows `chat` from `after`: its newer messages arrive as `message`, once, in order. */
  track(chat, after) {
    this.client.track(chat, after);
  }

  send({ chat, recipients, body, clientMsgId, replyTo, attachments }) {
    const frame = { body, client_msg_id: clientMsgId };
    if (chat) frame.chat = chat;
    if (recipients) frame.recipients = recipients;
    if (replyTo) frame.reply_to = replyTo;
    if (attachments?.length) frame.attachments = attachments;
    return this.client.send(frame);
  }

  /** Up to `limit` messages before `before` (the newest when it is undefined), oldest
   *  first: `{items, has_more}`, `has_more` saying that older ones exist. */
  history(chat, before, limit) {
    return this.client.history(chat, before === undefined ? { limit } : { before, limit });
  }

  typing(chat) {
    this.client.typing(chat);
  }

  read(chat, seq) {
    return this.client.read(chat, seq);
  }

  edit(chat, seq, body) {
    return this.client.edit(chat, seq, body);
  }

  remove(chat, seq) {
    return this.client.deleteMessage(chat, seq);
  }

  react(chat, seq, emoji) {
    return this.client.react(chat, seq, emoji);
  }

  unreact(chat, seq, emoji) {
    return this.client.unreact(chat, seq, emoji);
  }

  search(query) {
    return this.client.search(query, { per_page: 30 });
  }

  /** Uploads a File; resolves with its attachment id. */
  upload(chat, file) {
    return this.client.uploadFile(chat, file, { name: file.name, content_type: file.type || 'application/octet-stream' });
  }
}
