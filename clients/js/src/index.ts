// weft-client: a WebSocket client for weft (docs/protocol.md) and REST helpers
// for application backends (README.md, "Endpoints"). No runtime dependencies:
// `WebSocket` and `fetch` as browsers and Node 20+ have them (Node 20 needs
// `--experimental-websocket`, or pass a WebSocket constructor).
//
// Everything that runs is in this one file, so that `dist/index.js` can be
// served alone (the node embeds it for its web chat); `types.ts` is types only.

import type {
  AckFrame,
  Application,
  ChatInfoChange,
  Chat,
  ChatUpdatedFrame,
  CreatedApplication,
  Device,
  DeviceRegisteredFrame,
  DeviceUnregisteredFrame,
  ErrorFrame,
  HistoryOptions,
  Member,
  MemberJoinedFrame,
  MemberLeftFrame,
  Message,
  MessageDeletedFrame,
  MessageEditedFrame,
  MessageListParams,
  MessagesFrame,
  MessageVersion,
  NotificationSettings,
  NotificationSettingsChange,
  NotificationSettingsFrame,
  Presence,
  PresenceFrame,
  ResyncFrame,
  PushProvider,
  ReactionFrame,
  ReadState,
  ReceiptFrame,
  RequestId,
  RestMessage,
  RestSearchHit,
  Role,
  RefreshedFrame,
  RoleChangedFrame,
  SearchParams,
  SearchResultsFrame,
  SendAck,
  SendParams,
  ServerFrame,
  ThreadUpdatedFrame,
  TokenExpiringFrame,
  TypingFrame,
  UploadGrant,
  UploadParams,
  UploadReadyFrame,
  UserToken,
  Webhook,
  WebhookDelivery,
  WelcomeFrame,
  ListParams,
} from './types.js';

export type * from './types.js';

/** The package version. */
export const VERSION = '0.1.0';

// ================================================================ errors

/**
 * Every failure the client reports. `code` is stable: the server's code
 * (docs/protocol.md "Error codes", README "Errors") or one of the client's own:
 * `timeout`, `disconnected`, `closed`, `network`, `frame_too_large` (refused
 * before sending), `token_unavailable` (getToken failed), `bad_response`.
 */
export class WeftError extends Error {
  /** The stable code. */
  readonly code: string;
  /** The HTTP status, for REST errors (and a refused handshake). */
  readonly status: number | undefined;
  /** When the server said to retry. */
  readonly retryAfterMs: number | undefined;
  /** The request's id, for WebSocket errors. */
  readonly requestId: RequestId | undefined;
  /** The chat a catch-up (`hello`) or a fill failed for: the `error` event of a chat no longer tracked. */
  readonly chat: number | undefined;
  /** The error body or frame as received. */
  readonly detail: unknown;

  constructor(
    code: string,
    message: string,
    extra: {
      status?: number;
      retryAfterMs?: number;
      requestId?: RequestId;
      chat?: number;
      detail?: unknown;
      cause?: unknown;
    } = {},
  ) {
    super(message);
    this.name = 'WeftError';
    this.code = code;
    this.status = extra.status;
    this.retryAfterMs = extra.retryAfterMs;
    this.requestId = extra.requestId;
    this.chat = extra.chat;
    this.detail = extra.detail;
    if (extra.cause !== undefined) (this as { cause?: unknown }).cause = extra.cause;
  }

  /** Whether retrying the same request later can succeed. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code) || (this.status !== undefined && this.status >= 500);
  }
}

/** A REST call answered with an error status. */
export class WeftHttpError extends WeftError {
  constructor(status: number, code: string, message: string, detail: unknown, retryAfterMs?: number) {
    super(code, message, { status, detail, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    this.name = 'WeftHttpError';
  }
}

const RETRYABLE_CODES = new Set([
  'rate_limited',
  'in_flight',
  'store_unavailable',
  'redis_unavailable',
  'identity_provider_unavailable',
  'search_unavailable',
  'attachments_unavailable',
  'draining',
  'overloaded',
  'timeout',
  'disconnected',
  'network',
]);

/** Codes of a `send` answer that mean "try the same `client_msg_id` again". */
const SEND_RETRY_CODES = new Set(['rate_limited', 'in_flight', 'store_unavailable', 'redis_unavailable', 'draining']);

// ================================================================ small tools

type Listener<T> = (payload: T, info: any) => void;

/** A tiny typed event emitter that works the same in browsers and Node. */
class Emitter<Events extends Record<string, unknown>> {
  private listeners = new Map<keyof Events, Set<Listener<any>>>();

  /** Calls `fn` for every `event`; returns a function that removes it. */
  on<K extends keyof Events>(event: K, fn: (payload: Events[K], info: EventInfo<K>) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as Listener<any>);
    return () => this.off(event, fn);
  }

  /** Calls `fn` for the next `event` only. */
  once<K extends keyof Events>(event: K, fn: (payload: Events[K], info: EventInfo<K>) => void): () => void {
    const off = this.on(event, (p, i) => {
      off();
      fn(p, i);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, fn: (payload: Events[K], info: EventInfo<K>) => void): void {
    this.listeners.get(event)?.delete(fn as Listener<any>);
  }

  /** Resolves with the next `event` for which `filter` holds (rejects after `timeoutMs`, if given). */
  waitFor<K extends keyof Events>(
    event: K,
    filter: (payload: Events[K]) => boolean = () => true,
    timeoutMs = 0,
  ): Promise<Events[K]> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const off = this.on(event, (p) => {
        if (!filter(p)) return;
        off();
        if (timer) clearTimeout(timer);
        resolve(p);
      });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          off();
          reject(new WeftError('timeout', `no ${String(event)} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K], info?: unknown): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(payload, info);
      } catch (e) {
        // A listener's bug must not break the client's state machine.
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}

type EventInfo<K> = K extends 'message' ? MessageInfo : undefined;

const now = () => Date.now();

function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return s;
}

function utf8Length(s: string): number {
  if (typeof TextEncoder !== 'undefined') return new TextEncoder().encode(s).length;
  return unescape(encodeURIComponent(s)).length;
}

/** The users a body mentions, by the server's rule (src/model.rs `mentions`). */
export function mentionsOf(body: string): string[] {
  const idChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_.@:-]/.test(c);
  const found: string[] = [];
  const chars = Array.from(body);
  for (let i = 0; i < chars.length; i++) {
    if (chars[i] !== '@' || idChar(chars[i - 1])) continue;
    let end = i + 1;
    while (end < chars.length && idChar(chars[end]) && chars[end] !== '@') end++;
    const name = chars.slice(i + 1, end).join('').replace(/[.:-]+$/, '');
    if (name.length >= 1 && name.length <= 128 && !found.includes(name)) {
      found.push(name);
      if (found.length === 50) break;
    }
  }
  return found;
}

/** The `exp` of a JWT, in ms, when it can be read. */
function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part || typeof atob !== 'function') return undefined;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** `http://host:8080` or `ws://host:8080/ws` → the WebSocket URL. */
export function wsUrl(url: string): string {
  const u = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/ws';
  return u.toString();
}

/** The HTTP base of a node from its WebSocket URL (`ws://h/ws` → `http://h`). */
function httpBase(ws: string): string {
  const u = new URL(ws);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/ws\/?$/, '');
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

// ================================================================ the WebSocket client

/** What a WebSocket constructor must offer (the browser's, Node's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Why `getToken` is called. */
export interface TokenRequest {
  /**
   * `initial`; `expiring` (the node sent `token_expiring`: the token is sent in-band with
   * `refresh`, so it must name the same user, and the same session as `previous`); or
   * `expired` (close 4001, a 401 handshake, or the token's `exp` passed: it opens a new socket).
   */
  reason: 'initial' | 'expiring' | 'expired';
  /** The token that was refused, expired or is expiring, if any. */
  previous?: string;
}

export interface ReconnectOptions {
  /** The first backoff delay (before jitter). Default 250 ms. */
  minDelayMs?: number;
  /** The largest backoff delay. Default 10 000 ms. */
  maxDelayMs?: number;
  /** Each failed attempt multiplies the delay by this. Default 2. */
  factor?: number;
  /** The share of the delay drawn at random: delay × (1 − jitter × random). Default 0.5. */
  jitter?: number;
  /**
   * At most 3 reconnects "at once" (1012, 4001, 4200…) in this long; more back off.
   * A connection that caught up, or stayed up this long, resets the backoff. Default 5 000 ms.
   */
  stableAfterMs?: number;
}

export interface WeftClientOptions {
  /**
   * The node (or nodes) to connect to: `ws(s)://host/ws`, or `http(s)://host`
   * (`/ws` is added). With several, the client moves to the next one when a
   * node fails, drains or is full.
   */
  url: string | string[];
  /** A fixed user token (no refresh possible: a 4001 then closes the client). */
  token?: string;
  /**
   * Gives a user token; called at the first connect, before the token expires (the node's
   * `token_expiring`: the new token continues the same socket) and whenever it is refused or expired.
   */
  getToken?: (req: TokenRequest) => string | Promise<string>;
  /** Chat → the last `seq` the app holds: resumed with `hello` on every connect. */
  positions?: Record<number | string, number>;
  /**
   * What a live message of a chat the client does not track starts: `first_seen`
   * (default: that message and everything after it) or `beginning` (the whole
   * history, filled with `sync`).
   */
  untrackedChats?: 'first_seen' | 'beginning';
  /** A WebSocket constructor (default: `globalThis.WebSocket`). */
  WebSocket?: WebSocketConstructor;
  /** A fetch function (default: `globalThis.fetch`): uploads and checking a refused handshake. */
  fetch?: typeof fetch;
  reconnect?: ReconnectOptions;
  /** Connect when constructed. Default false: call `connect()`. */
  autoConnect?: boolean;
  /** A request unanswered this long on an open connection fails with `timeout`. Default 15 000 ms. */
  requestTimeoutMs?: number;
  /** A `send` gives up (rejects with `timeout`) after this long in all; 0 = never. Default 0. */
  sendTimeoutMs?: number;
  /** An open socket not welcomed within this long is dropped and retried. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** How long a gap in a chat's numbers may stay open before a `sync` fills it. Default 500 ms. */
  gapWaitMs?: number;
  /** Messages per `sync` page the client asks for itself (1–500). Default 200. */
  syncLimit?: number;
  /** Sends in flight at once (the server allows 64; keep it under `gateway.max_bad_frames`). Default 16. */
  maxInflightSends?: number;
  /** Frames over this size (bytes of JSON) are refused before sending. Default 65 536. */
  maxFrameBytes?: number;
  /** At most one `typing` per chat this often. Default 1 000 ms. */
  typingIntervalMs?: number;
  /** Emit a `message` for the app's own acked sends (the server does not echo them to the sending session). Default true. */
  echoOwnMessages?: boolean;
  /**
   * After this long without a frame from the node, the client asks it something
   * small (a `sync` of one message); no answer within `requestTimeoutMs` and the
   * connection is taken as dead and replaced (a network that drops packets gives
   * no close). 0: off. Default 30 000 ms.
   */
  heartbeatMs?: number;
  /** Receives the client's diagnostics. */
  logger?: (level: 'debug' | 'info' | 'warn', message: string, data?: unknown) => void;
}

/** Where a `message` event's message came from. */
export interface MessageInfo {
  /** `live`, `resume` (hello catch-up), `sync`, or `own` (built from the ack of this client's send). */
  source: 'live' | 'resume' | 'sync' | 'own';
  /**
   * True for a message that arrives after its number was given up as skipped
   * (a very late delivery): it comes once, but after higher numbers.
   */
  late: boolean;
}

export type ClientState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface ConnectedEvent extends WelcomeFrame {
  url: string;
}

export interface DisconnectedEvent {
  code: number;
  reason: string;
  url: string;
  /** False when the client stopped (closed by the app, or a close code that forbids reconnecting). */
  willReconnect: boolean;
  /** The wait before the next attempt. */
  delayMs: number;
}

export interface ClosedEvent {
  code: number;
  reason: string;
  /** Set when the client stopped because of a failure (a 4000–4099 close, 1007, no token). */
  error?: WeftError;
}

export interface GapEvent {
  chat: number;
  /** The last number held. */
  after: number;
  /** The lowest number above the gap. */
  before: number;
}

/** Every event, and what its listeners receive. */
export interface WeftEvents {
  [key: string]: unknown;
  // Server frames, one event per type (docs/protocol.md, "Server → client").
  /** Each message once, in `seq` order per chat (live, catch-up and gap fills alike). */
  message: Message;
  message_edited: MessageEditedFrame;
  message_deleted: MessageDeletedFrame;
  reaction: ReactionFrame;
  thread_updated: ThreadUpdatedFrame;
  typing: TypingFrame;
  presence: PresenceFrame;
  /** The server lost live frames of a chat between its nodes; the client is already syncing it. */
  resync: ResyncFrame;
  receipt: ReceiptFrame;
  chat_updated: ChatUpdatedFrame;
  member_joined: MemberJoinedFrame;
  member_left: MemberLeftFrame;
  role_changed: RoleChangedFrame;
  /** The token expires soon; the client is already getting a new one to send with `refresh`. */
  token_expiring: TokenExpiringFrame;
  /** The node took the new token (the answer to the client's `refresh`). */
  refreshed: RefreshedFrame;
  search_results: SearchResultsFrame;
  upload_ready: UploadReadyFrame;
  device_registered: DeviceRegisteredFrame;
  device_unregistered: DeviceUnregisteredFrame;
  notification_settings: NotificationSettingsFrame;
  welcome: WelcomeFrame;
  ack: AckFrame;
  /** Raw `messages` frames (their items also come through `message`). */
  messages: MessagesFrame;
  /** An `error` frame that answers no pending request of the app. */
  error: WeftError;
  /** Every frame as received, before anything else (frame types added later too). */
  frame: ServerFrame | { type: string; [k: string]: unknown };
  // The connection.
  state: ClientState;
  connecting: { url: string; attempt: number };
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  /** Every resumed chat is caught up and no gap is open (once per connection). */
  caught_up: { chats: number[] };
  closed: ClosedEvent;
  token_refreshed: { reason: TokenRequest['reason'] };
  /** A gap in a chat's numbers is being filled. */
  gap: GapEvent;
}

// An internal marker: a number known not to be stored (skipped for good).
const ABSENT = Symbol('absent');

interface ChatState {
  /** The highest contiguous number delivered. */
  position: number;
  /** Numbers above `position`: messages held back, or known-absent numbers. */
  buffer: Map<number, Message | typeof ABSENT>;
  /** Numbers given up as absent (recent ones), so a late arrival still gets through once. */
  skipped: Set<number>;
  gapTimer: ReturnType<typeof setTimeout> | undefined;
  /** A fill (`sync`) is in flight. */
  filling: boolean;
  /** A `resync` came while a fill was in flight: fill again once it ends. */
  refill: boolean;
}

interface Pending {
  id: number;
  frame: Record<string, unknown>;
  resolve: (f: any) => void;
  reject: (e: WeftError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Resent on the next connection when the connection drops before the answer. */
  retryable: boolean;
  written: boolean;
  attempts: number;
}

interface SendEntry {
  frame: Record<string, unknown>;
  clientMsgId: string;
  resolve: (a: SendAck) => void;
  reject: (e: WeftError) => void;
  state: 'queued' | 'inflight';
  reqId: number;
  attemptTimer: ReturnType<typeof setTimeout> | undefined;
  deadline: ReturnType<typeof setTimeout> | undefined;
  attempts: number;
  /** Not to be sent again before this time (a service failing, a first try still committing). */
  notBefore: number;
}

interface HelloState {
  /** Chats whose catch-up has not ended yet (a `messages` frame with `done`, or an `error` naming the chat). */
  remaining: Set<number>;
}

interface Conn {
  ws: WebSocketLike;
  url: string;
  welcomed: boolean;
  openedAt: number;
  welcomedAt: number;
  caughtUp: boolean;
  lastHeard: number;
  heartbeat: ReturnType<typeof setInterval> | undefined;
  probing: boolean;
  connectTimer: ReturnType<typeof setTimeout> | undefined;
  /** An in-band token refresh is under way. */
  refreshing: boolean;
}

/**
 * A user's WebSocket session with weft that survives reconnects: it resumes
 * chats with `hello`, fills gaps with `sync`, retries unacked sends with their
 * `client_msg_id`, backs off as the server says, and refreshes its token.
 */
export class WeftClient extends Emitter<WeftEvents> {
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly opts: Required<
    Pick<
      WeftClientOptions,
      | 'requestTimeoutMs'
      | 'sendTimeoutMs'
      | 'connectTimeoutMs'
      | 'gapWaitMs'
      | 'syncLimit'
      | 'maxInflightSends'
      | 'maxFrameBytes'
      | 'typingIntervalMs'
      | 'echoOwnMessages'
      | 'untrackedChats'
      | 'heartbeatMs'
    >
  >;
  private readonly backoff: Required<ReconnectOptions>;
  private readonly WS: WebSocketConstructor | undefined;
  private readonly fetchFn: typeof fetch | undefined;
  private readonly getTokenFn: ((req: TokenRequest) => string | Promise<string>) | undefined;
  private readonly log: NonNullable<WeftClientOptions['logger']>;

  private token: string | undefined;
  private tokenBad = false;
  private _state: ClientState = 'idle';
  private conn: Conn | undefined;
  private attempt = 0;
  /** Reconnects made at once in the current window of `stableAfterMs` (a few, then back off). */
  private quickRetries = 0;
  private quickWindowStart = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** A connection attempt is getting its token. */
  private opening = false;
  private stopped = false;
  private welcome: WelcomeFrame | undefined;
  private connectWaiters: { resolve: (w: ConnectedEvent) => void; reject: (e: WeftError) => void }[] = [];

  private nextId = 1;
  private helloSeq = 0;
  private pending = new Map<number, Pending>();
  private queue: Pending[] = [];
  private sends: SendEntry[] = [];
  private sendsById = new Map<number, SendEntry>();
  private holdUntil = 0;
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  private sendWakeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Until then, one send at a time: the window that just hit the rate limit must not keep striking. */
  private cautiousUntil = 0;
  private hellos = new Map<string, HelloState>();
  private chats = new Map<number, ChatState>();
  private lastTyping = new Map<number, number>();

  constructor(options: WeftClientOptions) {
    super();
    const urls = Array.isArray(options.url) ? options.url : [options.url];
    if (urls.length === 0) throw new WeftError('invalid_options', 'give at least one url');
    this.urls = urls.map(wsUrl);
    if (!options.token && !options.getToken) throw new WeftError('invalid_options', 'give `token` or `getToken`');
    this.token = options.token;
    this.getTokenFn = options.getToken;
    this.WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.fetchFn = options.fetch ?? (globalThis.fetch ? globalThis.fetch.bind(globalThis) : undefined);
    this.opts = {
      requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
      sendTimeoutMs: options.sendTimeoutMs ?? 0,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      gapWaitMs: options.gapWaitMs ?? 500,
      syncLimit: Math.min(500, Math.max(1, options.syncLimit ?? 200)),
      maxInflightSends: Math.max(1, options.maxInflightSends ?? 16),
      maxFrameBytes: options.maxFrameBytes ?? 65_536,
      typingIntervalMs: options.typingIntervalMs ?? 1_000,
      echoOwnMessages: options.echoOwnMessages ?? true,
      heartbeatMs: options.heartbeatMs ?? 30_000,
      untrackedChats: options.untrackedChats ?? 'first_seen',
    };
    const r = options.reconnect ?? {};
    this.backoff = {
      minDelayMs: r.minDelayMs ?? 250,
      maxDelayMs: r.maxDelayMs ?? 10_000,
      factor: r.factor ?? 2,
      jitter: Math.min(1, Math.max(0, r.jitter ?? 0.5)),
      stableAfterMs: r.stableAfterMs ?? 5_000,
    };
    this.log = options.logger ?? (() => {});
    for (const [chat, after] of Object.entries(options.positions ?? {})) this.track(Number(chat), after);
    if (options.autoConnect) this.connect().catch(() => {});
  }

  // ------------------------------------------------------------ public state

  /** `idle`, `connecting`, `connected`, `reconnecting` or `closed`. */
  get state(): ClientState {
    return this._state;
  }
  /** The `welcome` of the current connection (user, session, node), if connected. */
  get session(): WelcomeFrame | undefined {
    return this.conn?.welcomed ? this.welcome : undefined;
  }
  /** The signed-in user, once welcomed. */
  get user(): string | undefined {
    return this.welcome?.user;
  }
  /** The URL of the current (or last) connection. */
  get url(): string {
    return this.urls[this.urlIndex]!;
  }
  /** The last contiguous `seq` delivered of `chat` (undefined when untracked). */
  position(chat: number): number | undefined {
    return this.chats.get(chat)?.position;
  }
  /** Every tracked chat's position: what to store to resume later (`positions`). */
  positions(): Record<number, number> {
    const out: Record<number, number> = {};
    for (const [chat, st] of this.chats) out[chat] = st.position;
    return out;
  }
  /** Sends not acked yet. */
  get pendingSends(): number {
    return this.sends.length;
  }

  // ------------------------------------------------------------ connecting

  /**
   * Connects (and keeps reconnecting until `close()`); resolves with the first
   * welcome. Rejects only when the client stops for good (a 4000–4099 close,
   * 1007, no token).
   */
  connect(): Promise<ConnectedEvent> {
    if (this._state === 'closed') return Promise.reject(new WeftError('closed', 'the client was closed'));
    const p = new Promise<ConnectedEvent>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.conn?.welcomed && this.welcome) {
      this.settleConnect({ ...this.welcome, url: this.conn.url });
    } else if (this._state === 'idle') {
      this.stopped = false;
      void this.open();
    }
    return p;
  }

  /** Closes the connection for good: pending requests and sends reject with `closed`. */
  close(code = 1000, reason = 'client closed'): void {
    if (this._state === 'closed') return;
    this.stopped = true;
    this.finish(code, reason, undefined);
  }

  /** Drops the current connection and reconnects at once (for tests and "retry now" buttons). */
  reconnect(): void {
    if (this.stopped) return;
    if (this.conn) {
      const conn = this.conn;
      try {
        conn.ws.close(1000, 'reconnect');
      } catch {
        /* closed already */
      }
      this.onClose(conn, 4200, 'client reconnect');
    } else {
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      void this.open();
    }
  }

  private setState(s: ClientState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }

  private async currentToken(): Promise<string> {
    const exp = this.token ? jwtExpiry(this.token) : undefined;
    const expired = exp !== undefined && exp - now() < 5_000;
    if (this.token && !this.tokenBad && !expired) return this.token;
    if (!this.getTokenFn) {
      if (this.token && !this.tokenBad) return this.token;
      throw new WeftError('invalid_token', 'the token was refused and no getToken was given');
    }
    const reason: TokenRequest['reason'] = this.token ? 'expired' : 'initial';
    const req: TokenRequest = this.token ? { reason, previous: this.token } : { reason };
    let token: string;
    try {
      token = await this.getTokenFn(req);
    } catch (e) {
      throw new WeftError('token_unavailable', `getToken failed: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    if (typeof token !== 'string' || token.length === 0) {
      throw new WeftError('token_unavailable', 'getToken gave no token');
    }
    this.token = token;
    this.tokenBad = false;
    if (reason === 'expired') this.emit('token_refreshed', { reason });
    return token;
  }

  private async open(): Promise<void> {
    if (this.stopped || this.opening || this.conn) return;
    this.opening = true;
    try {
      await this.openNow();
    } finally {
      this.opening = false;
    }
  }

  private async openNow(): Promise<void> {
    this.setState(this.attempt === 0 && !this.welcome ? 'connecting' : 'reconnecting');
    const url = this.urls[this.urlIndex]!;
    this.emit('connecting', { url, attempt: this.attempt });
    let token: string;
    try {
      token = await this.currentToken();
    } catch (e) {
      const err = e as WeftError;
      if (err.code === 'invalid_token') {
        this.stopped = true;
        this.finish(4001, 'token refused', err);
        return;
      }
      this.log('warn', 'getToken failed', err);
      this.emit('error', err);
      this.scheduleReconnect(this.backoffDelay(), 0, '', url);
      return;
    }
    if (this.stopped) return;
    if (!this.WS) {
      this.stopped = true;
      this.finish(1006, 'no WebSocket', new WeftError('invalid_options', 'no WebSocket constructor (Node 20: --experimental-websocket, or pass `WebSocket`)'));
      return;
    }
    const u = new URL(url);
    u.searchParams.set('token', token);
    // Frames the node writes together may share a WebSocket frame, a line each
    // (docs/protocol.md, "Batched frames"): fewer frames to read under load.
    u.searchParams.set('batch', '1');
    let ws: WebSocketLike;
    try {
      ws = new this.WS(u.toString());
    } catch (e) {
      this.log('warn', 'WebSocket constructor threw', e);
      this.scheduleReconnect(this.backoffDelay(), 1006, String(e), url, true);
      return;
    }
    const conn: Conn = {
      ws,
      url,
      welcomed: false,
      openedAt: 0,
      welcomedAt: 0,
      caughtUp: false,
      lastHeard: now(),
      heartbeat: undefined,
      probing: false,
      connectTimer: undefined,
      refreshing: false,
    };
    this.conn = conn;
    conn.connectTimer = setTimeout(() => {
      if (this.conn !== conn || conn.welcomed) return;
      this.log('warn', 'no welcome in time', { url });
      try {
        ws.close(4000, 'connect timeout');
      } catch {
        /* ignore */
      }
      this.onClose(conn, 1006, 'connect timeout');
    }, this.opts.connectTimeoutMs);
    ws.onopen = () => {
      conn.openedAt = now();
    };
    ws.onmessage = (ev) => {
      const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
      // One frame a line (a JSON frame never holds a raw newline).
      for (const line of text.split('\n')) {
        // A frame may end this connection (a close, a reconnect): the rest is not its.
        if (this.conn !== conn) return;
        let frame: any;
        try {
          frame = JSON.parse(line);
        } catch {
          this.log('warn', 'a frame that is not JSON', line.slice(0, 200));
          continue;
        }
        if (frame && typeof frame.type === 'string') this.onFrame(conn, frame);
      }
    };
    ws.onerror = () => {
      // Some WebSockets (Node 20's) fire only `error`, never `close`, when the
      // handshake fails (connection refused, a 401): that is the close.
      if (!conn.openedAt) return this.onClose(conn, 1006, 'connection failed');
      setTimeout(() => {
        if (this.conn !== conn) return;
        try {
          ws.close();
        } catch {
          /* ignore */
        }
        this.onClose(conn, 1006, 'connection error');
      }, 1_000);
    };
    ws.onclose = (ev) => this.onClose(conn, ev?.code ?? 1006, ev?.reason ?? '');
  }

  private backoffDelay(floorAttempt = 0): number {
    const n = Math.max(this.attempt, floorAttempt);
    const base = Math.min(this.backoff.maxDelayMs, this.backoff.minDelayMs * Math.pow(this.backoff.factor, n));
    return Math.round(base * (1 - this.backoff.jitter * Math.random()));
  }

  /** No wait for the first few "reconnect now" closes; then the backoff, so a node that keeps closing is not hammered. */
  private quickDelay(): number {
    if (now() - this.quickWindowStart >= this.backoff.stableAfterMs) {
      this.quickWindowStart = now();
      this.quickRetries = 0;
    }
    if (this.quickRetries < 3) {
      this.quickRetries++;
      return 0;
    }
    return this.backoffDelay();
  }

  private scheduleReconnect(delayMs: number, code: number, reason: string, url: string, rotate = false): void {
    if (this.stopped) return;
    if (rotate && this.urls.length > 1) this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.attempt++;
    this.setState('reconnecting');
    this.emit('disconnected', { code, reason, url, willReconnect: true, delayMs });
    this.log('info', `reconnecting in ${delayMs} ms`, { code, reason, url });
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delayMs);
  }

  /** A refused handshake: ask the node over HTTP why (401: the token; 503: draining). */
  private async probeHandshake(url: string): Promise<'token' | 'other'> {
    if (!this.fetchFn || !this.token) return 'other';
    try {
      const res = await this.fetchFn(`${httpBase(url)}/api/v1/me`, {
        headers: { authorization: `Bearer ${this.token}` },
      });
      try {
        await res.body?.cancel();
      } catch {
        /* ignore */
      }
      return res.status === 401 ? 'token' : 'other';
    } catch {
      return 'other';
    }
  }

  private onClose(conn: Conn, code: number, reason: string): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    if (conn.connectTimer) clearTimeout(conn.connectTimer);
    if (conn.heartbeat) clearInterval(conn.heartbeat);
    conn.ws.onclose = conn.ws.onmessage = conn.ws.onopen = conn.ws.onerror = null;
    const wasWelcomed = conn.welcomed;
    // A connection that caught up, or stayed up a while, worked: the backoff starts over.
    if (wasWelcomed && (conn.caughtUp || now() - conn.welcomedAt >= this.backoff.stableAfterMs)) this.attempt = 0;
    this.dropConnectionState();
    if (this.stopped) return;
    const url = conn.url;
    this.log('info', 'connection closed', { code, reason, url, welcomed: wasWelcomed });

    // docs/protocol.md, "Close codes".
    if (code === 1007 || (code >= 4000 && code <= 4099 && code !== 4001)) {
      this.stopped = true;
      this.finish(code, reason, new WeftError('closed', `closed with ${code}: ${reason || 'do not reconnect'}`));
      return;
    }
    if (code === 4001) {
      this.tokenBad = true;
      if (!this.getTokenFn) {
        this.stopped = true;
        this.finish(code, reason, new WeftError('invalid_token', 'the token expired and no getToken was given'));
        return;
      }
      this.scheduleReconnect(this.quickDelay(), code, reason, url);
      return;
    }
    if (code === 1012 || code === 1009 || (code >= 4200 && code <= 4299)) {
      // Reconnect at once (another node for 1012) and resync, unless that is
      // what just failed: then back off like any failure.
      this.scheduleReconnect(this.quickDelay(), code, reason, url, code === 1012);
      return;
    }
    if (code >= 4100 && code <= 4199) {
      // Back off; 4100 (flooding) at least a second.
      this.scheduleReconnect(this.backoffDelay(code === 4100 ? 2 : 1), code, reason, url, code !== 4100);
      return;
    }
    if (!wasWelcomed && code === 1006) {
      // The handshake failed: a 401 means a new token; anything else is a node down or draining.
      void this.probeHandshake(url).then((why) => {
        if (this.stopped) return;
        if (why === 'token') {
          this.tokenBad = true;
          if (!this.getTokenFn) {
            this.stopped = true;
            this.finish(4001, 'token refused', new WeftError('invalid_token', 'the token was refused and no getToken was given', { status: 401 }));
            return;
          }
          this.scheduleReconnect(this.quickDelay(), 401, 'token refused', url);
        } else {
          this.scheduleReconnect(this.backoffDelay(), code, reason, url, true);
        }
      });
      return;
    }
    // 1000/1001/1006/1011 and anything else: back off, another node if there is one.
    this.scheduleReconnect(this.backoffDelay(), code, reason, url, true);
  }

  /** Everything tied to the connection that just closed. */
  private dropConnectionState(): void {
    this.hellos.clear();
    for (const st of this.chats.values()) {
      st.filling = false;
      if (st.gapTimer) clearTimeout(st.gapTimer);
      st.gapTimer = undefined;
    }
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.timer = undefined;
      if (p.retryable) {
        p.written = false;
        this.queue.push(p);
      } else {
        p.reject(new WeftError('disconnected', 'the connection closed before the answer'));
      }
    }
    this.pending.clear();
    this.queue.sort((a, b) => a.id - b.id);
    for (const s of this.sends) {
      if (s.attemptTimer) clearTimeout(s.attemptTimer);
      s.attemptTimer = undefined;
      s.state = 'queued';
    }
    this.sendsById.clear();
  }

  private finish(code: number, reason: string, error: WeftError | undefined): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (this.sendWakeTimer) clearTimeout(this.sendWakeTimer);
    this.sendWakeTimer = undefined;
    const conn = this.conn;
    if (conn) {
      this.conn = undefined;
      if (conn.connectTimer) clearTimeout(conn.connectTimer);
      if (conn.heartbeat) clearInterval(conn.heartbeat);
      conn.ws.onclose = conn.ws.onmessage = conn.ws.onopen = conn.ws.onerror = null;
      try {
        conn.ws.close(code >= 4000 || code === 1000 ? code : 1000, reason.slice(0, 100));
      } catch {
        /* ignore */
      }
    }
    this.dropConnectionState();
    const closed = error ?? new WeftError('closed', 'the client was closed');
    for (const p of this.queue) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(closed);
    }
    this.queue = [];
    for (const s of this.sends) {
      if (s.deadline) clearTimeout(s.deadline);
      s.reject(closed);
    }
    this.sends = [];
    for (const w of this.connectWaiters.splice(0)) w.reject(closed);
    this.setState('closed');
    const url = this.urls[this.urlIndex]!;
    this.emit('disconnected', { code, reason, url, willReconnect: false, delayMs: 0 });
    this.emit('closed', error ? { code, reason, error } : { code, reason });
  }

  private settleConnect(ev: ConnectedEvent): void {
    for (const w of this.connectWaiters.splice(0)) w.resolve(ev);
  }

  // ------------------------------------------------------------ incoming frames

  private onFrame(conn: Conn, frame: any): void {
    conn.lastHeard = now();
    this.emit('frame', frame);
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(conn, frame as WelcomeFrame);
      case 'message':
        this.ingest(frame.chat, stripType(frame), 'live');
        return;
      case 'messages':
        this.emit('messages', frame);
        return this.onMessages(frame as MessagesFrame);
      case 'ack':
        this.emit('ack', frame);
        return this.onAnswer(frame);
      case 'error':
        return this.onError(frame as ErrorFrame);
      case 'member_left':
        this.emit(frame.type, frame);
        if (frame.user === this.welcome?.user) this.untrack(frame.chat);
        return;
      case 'resync':
        this.emit(frame.type, frame);
        return this.onResync(frame as ResyncFrame);
      case 'token_expiring':
        this.emit(frame.type, frame);
        void this.refreshInBand(conn);
        return;
      default:
        this.emit(frame.type, frame);
        if (frame.id !== undefined) this.onAnswer(frame);
    }
  }

  private onWelcome(conn: Conn, w: WelcomeFrame): void {
    conn.welcomed = true;
    conn.welcomedAt = now();
    if (conn.connectTimer) clearTimeout(conn.connectTimer);
    const beat = this.opts.heartbeatMs;
    if (beat > 0) conn.heartbeat = setInterval(() => this.probe(conn), Math.max(50, beat / 4));
    this.welcome = w;
    this.setState('connected');
    const ev: ConnectedEvent = { ...w, url: conn.url };
    this.emit('welcome', w);
    this.emit('connected', ev);
    this.settleConnect(ev);
    this.sendHello([...this.chats.entries()].map(([chat, st]) => ({ chat, after: st.position })));
    this.flush();
    this.checkCaughtUp();
  }

  /**
   * `token_expiring`: a new token from `getToken` (`expiring`) sent with `refresh`, so the
   * socket stays open. Any failure (no `getToken`, it threw or gave the same token, the node
   * refused it, the connection dropped) leaves things as they were: the node closes with 4001
   * at expiry and the client reconnects with a token it asks for then (`expired`).
   */
  private async refreshInBand(conn: Conn): Promise<void> {
    if (!this.getTokenFn || conn.refreshing || this.conn !== conn || !conn.welcomed) return;
    const previous = this.token;
    conn.refreshing = true;
    try {
      let token: string;
      try {
        token = await this.getTokenFn(previous ? { reason: 'expiring', previous } : { reason: 'expiring' });
      } catch (e) {
        this.log('warn', 'getToken failed before the token expired: reconnecting at expiry', e);
        return;
      }
      if (typeof token !== 'string' || token.length === 0 || token === previous) {
        this.log('warn', 'getToken gave no new token before the token expired: reconnecting at expiry');
        return;
      }
      if (this.conn !== conn || this.stopped) return;
      try {
        await this.request<RefreshedFrame>({ type: 'refresh', token }, { retryable: false, internal: true });
      } catch (e) {
        this.log('warn', 'the node refused the refreshed token: reconnecting at expiry', e);
        return;
      }
      // A reconnect meanwhile took a token of its own: keep that one.
      if (this.conn !== conn || this.token !== previous) return;
      this.token = token;
      this.tokenBad = false;
      this.emit('token_refreshed', { reason: 'expiring' });
    } finally {
      conn.refreshing = false;
    }
  }

  /** Asks a quiet node something small; no answer in time: the connection is dead. */
  private probe(conn: Conn): void {
    if (this.conn !== conn || conn.probing || now() - conn.lastHeard < this.opts.heartbeatMs) return;
    const chat = this.chats.keys().next().value as number | undefined;
    conn.probing = true;
    // A chat's next message (from the recent cache), or, tracking none, the notification settings.
    const after = chat === undefined ? 0 : this.chats.get(chat)!.position;
    const frame: Record<string, unknown> =
      chat === undefined ? { type: 'notification_settings' } : { type: 'sync', chat, after, limit: 1 };
    const answered = () => {
      conn.probing = false;
    };
    this.request<MessagesFrame>(frame, { retryable: false, internal: true })
      .then((page) => {
        answered();
        if (chat !== undefined && this.chats.has(chat)) this.ingestStored(chat, page.items, 'sync', after);
      })
      .catch((e: WeftError) => {
        answered();
        if (e.code !== 'timeout' || this.conn !== conn) return; // any answer (an error too) shows the node is there
        this.log('warn', 'the node did not answer a heartbeat: reconnecting', { url: conn.url });
        try {
          conn.ws.close(4000, 'heartbeat timeout');
        } catch {
          /* ignore */
        }
        this.onClose(conn, 1006, 'heartbeat timeout');
      });
  }

  private sendHello(resume: { chat: number; after: number }[]): void {
    for (let i = 0; i < resume.length; i += 1000) {
      const part = resume.slice(i, i + 1000);
      const id = `h${++this.helloSeq}`;
      this.hellos.set(id, { remaining: new Set(part.map((r) => r.chat)) });
      this.write({ type: 'hello', id, resume: part });
    }
  }

  private onMessages(frame: MessagesFrame): void {
    const hid = typeof frame.id === 'string' && frame.id.startsWith('h') ? frame.id : undefined;
    if (!hid) return this.onAnswer(frame);
    // A catch-up frame: stored messages, in order, whatever the hello's state.
    this.ingestStored(frame.chat, frame.items, 'resume');
    const hello = this.hellos.get(hid);
    // A node older than `done` sends none: each frame is taken as the chat's last (a
    // `has_more` then pages on with sync; frames still coming are kept, duplicates dropped).
    const done = frame.done ?? true;
    if (!hello || !done || !hello.remaining.delete(frame.chat)) return;
    if (hello.remaining.size === 0) this.hellos.delete(hid);
    // The chat's catch-up ended; `has_more`: it stopped at the node's resume_max_messages.
    const st = this.chats.get(frame.chat);
    if (frame.has_more) this.fill(frame.chat);
    else if (st) this.watchGap(frame.chat, st); // a gap left now is one to fill
    this.checkCaughtUp();
  }

  private onError(frame: ErrorFrame): void {
    const err = new WeftError(frame.code, frame.message, {
      ...(frame.retry_after_ms !== undefined ? { retryAfterMs: frame.retry_after_ms } : {}),
      ...(frame.id !== undefined ? { requestId: frame.id } : {}),
      ...(frame.chat !== undefined ? { chat: frame.chat } : {}),
      detail: frame,
    });
    if (frame.code === 'rate_limited') this.hold(frame.retry_after_ms ?? 1_000);
    if (typeof frame.id === 'string' && frame.id.startsWith('h')) {
      const hello = this.hellos.get(frame.id);
      if (hello) {
        if (typeof frame.chat === 'number') {
          // That chat's catch-up failed; the others go on.
          if (hello.remaining.delete(frame.chat)) this.onChatFailure(frame.chat, err);
        } else {
          // The whole hello was refused (rate limited, say): its chats catch up with sync.
          for (const chat of hello.remaining) this.retryChat(chat, err);
          hello.remaining.clear();
        }
        if (hello.remaining.size === 0) this.hellos.delete(frame.id);
        this.checkCaughtUp();
        return;
      }
    }
    if (typeof frame.id === 'number') {
      const send = this.sendsById.get(frame.id);
      if (send) return this.onSendError(send, err);
      const p = this.pending.get(frame.id);
      if (p) return this.onRequestError(p, err);
    }
    this.emit('error', err);
  }

  /** A catch-up or fill of `chat` failed. */
  private onChatFailure(chat: number, err: WeftError): void {
    if (err.code === 'not_a_member' || err.code === 'chat_not_found') {
      this.log('info', `chat ${chat} is not readable (${err.code}): no longer tracked`);
      this.untrack(chat);
      const about = err.chat === chat ? err : new WeftError(err.code, err.message, { chat, detail: err.detail, cause: err });
      this.emit('error', about);
      return;
    }
    this.retryChat(chat, err);
  }

  /** Catches `chat` up with `sync` a little later (after `retry_after_ms`, at least `gapWaitMs`). */
  private retryChat(chat: number, err: WeftError): void {
    const st = this.chats.get(chat);
    if (!st) return;
    if (st.gapTimer) clearTimeout(st.gapTimer);
    st.gapTimer = setTimeout(() => {
      st.gapTimer = undefined;
      this.fill(chat);
    }, Math.max(err.retryAfterMs ?? 0, this.opts.gapWaitMs));
  }

  private onAnswer(frame: any): void {
    if (typeof frame.id !== 'number') return;
    const send = this.sendsById.get(frame.id);
    if (send && frame.type === 'ack') return this.onSendAck(send, frame as AckFrame);
    const p = this.pending.get(frame.id);
    if (!p) return;
    this.pending.delete(p.id);
    if (p.timer) clearTimeout(p.timer);
    p.resolve(frame);
  }

  private onRequestError(p: Pending, err: WeftError): void {
    this.pending.delete(p.id);
    if (p.timer) clearTimeout(p.timer);
    if (err.code === 'rate_limited' && p.attempts < 5) {
      p.written = false;
      this.queue.push(p);
      this.queue.sort((a, b) => a.id - b.id);
      this.flush();
      return;
    }
    p.reject(err);
  }

  // ------------------------------------------------------------ ordering, gaps, resume

  private chatState(chat: number, startAt: number): ChatState {
    let st = this.chats.get(chat);
    if (!st) {
      st = { position: startAt, buffer: new Map(), skipped: new Set(), gapTimer: undefined, filling: false, refill: false };
      this.chats.set(chat, st);
    }
    return st;
  }

  /** One message from a live frame or an ack: delivered in order, once. */
  private ingest(chat: number, m: Message, source: MessageInfo['source']): void {
    let st = this.chats.get(chat);
    if (!st) {
      const start = this.opts.untrackedChats === 'beginning' ? 0 : m.seq - 1;
      st = this.chatState(chat, start);
    }
    this.place(st, m, source);
    this.drain(chat, st);
    this.watchGap(chat, st);
  }

  private place(st: ChatState, m: Message, source: MessageInfo['source']): void {
    if (m.seq <= st.position) {
      if (st.skipped.delete(m.seq)) this.deliver(m, { source, late: true });
      return;
    }
    const held = st.buffer.get(m.seq);
    if (held !== undefined && held !== ABSENT) return;
    if (m.seq === st.position + 1 && held === undefined) {
      st.position = m.seq;
      this.deliver(m, { source, late: false });
      return;
    }
    (m as Message & { _source?: string })._source = source;
    st.buffer.set(m.seq, m);
  }

  private deliver(m: Message, info: MessageInfo): void {
    const clean = { ...m };
    delete (clean as { _source?: string })._source;
    this.emit('message', clean, info);
  }

  /** Delivers what the buffer holds right after the position. */
  private drain(_chat: number, st: ChatState): void {
    for (;;) {
      const next = st.buffer.get(st.position + 1);
      if (next === undefined) break;
      st.buffer.delete(st.position + 1);
      st.position++;
      if (next === ABSENT) {
        st.skipped.add(st.position);
        if (st.skipped.size > 1000) st.skipped.delete(st.skipped.values().next().value as number);
      } else {
        const source = ((next as Message & { _source?: string })._source ?? 'live') as MessageInfo['source'];
        this.deliver(next, { source, late: false });
      }
    }
  }

  /**
   * Messages read from the store (catch-up, sync) after `after`: every number
   * in between that is not among them is not stored. `heldBefore` (for a read
   * that found nothing more): the newest number held when the read was asked
   * for; those were stored before the read, so every number up to it that the
   * read did not return is not stored either.
   */
  private ingestStored(chat: number, items: Message[], source: 'resume' | 'sync', after?: number, heldBefore?: number): void {
    const st = this.chatState(chat, after ?? 0);
    const sorted = [...items].sort((a, b) => a.seq - b.seq);
    let prev = after;
    for (const m of sorted) {
      if (prev !== undefined) this.markAbsent(st, prev + 1, m.seq - 1);
      this.place(st, m, source);
      prev = m.seq;
    }
    if (heldBefore !== undefined && prev !== undefined && heldBefore > prev) this.markAbsent(st, prev + 1, heldBefore - 1);
    this.drain(chat, st);
    this.watchGap(chat, st);
  }

  /** The newest message number held back in `st` (0 when none). */
  private newestHeld(st: ChatState): number {
    let top = 0;
    for (const [n, m] of st.buffer) if (m !== ABSENT && n > top) top = n;
    return top;
  }

  private markAbsent(st: ChatState, from: number, to: number): void {
    const lo = Math.max(from, st.position + 1);
    if (to - lo > 100_000) {
      // A huge hole: jump over it instead of marking each number.
      st.position = Math.max(st.position, to - 100_000);
    }
    for (let n = Math.max(lo, st.position + 1); n <= to; n++) if (!st.buffer.has(n)) st.buffer.set(n, ABSENT);
  }

  private gapOpen(st: ChatState): boolean {
    return st.buffer.size > 0 && !st.buffer.has(st.position + 1);
  }

  private watchGap(chat: number, st: ChatState): void {
    if (!this.gapOpen(st)) {
      if (st.gapTimer) clearTimeout(st.gapTimer);
      st.gapTimer = undefined;
      this.checkCaughtUp();
      return;
    }
    // A chat still catching up: its catch-up closes the gap, or its end looks again.
    if (st.gapTimer || st.filling || this.catchingUp(chat)) return;
    st.gapTimer = setTimeout(() => {
      st.gapTimer = undefined;
      if (this.chats.get(chat) === st && this.gapOpen(st)) {
        const before = Math.min(...[...st.buffer.keys()].filter((n) => st.buffer.get(n) !== ABSENT));
        this.emit('gap', { chat, after: st.position, before });
        this.fill(chat);
      } else {
        this.checkCaughtUp();
      }
    }, this.opts.gapWaitMs);
  }

  /** Whether a `hello` catch-up of `chat` has not ended yet. */
  private catchingUp(chat: number): boolean {
    for (const h of this.hellos.values()) if (h.remaining.has(chat)) return true;
    return false;
  }

  /** The server lost live frames of a chat: fill it now, without waiting for a gap to show. */
  private onResync(frame: ResyncFrame): void {
    const st = this.chats.get(frame.chat);
    // A chat still catching up gets everything from its catch-up.
    if (!st || this.catchingUp(frame.chat)) return;
    if (st.gapTimer) clearTimeout(st.gapTimer);
    st.gapTimer = undefined;
    if (st.filling) st.refill = true; // the fill under way may have read before the lost frames' messages
    else this.fill(frame.chat);
  }

  /** Pages a chat forward with `sync` from its position until the store has no more. */
  private fill(chat: number): void {
    const st = this.chats.get(chat);
    if (!st || st.filling || !this.conn?.welcomed) return;
    st.filling = true;
    const after = st.position;
    const held = this.newestHeld(st);
    const frame = { type: 'sync', chat, after, limit: this.opts.syncLimit };
    this.request<MessagesFrame>(frame, { retryable: false, internal: true })
      .then((page) => {
        if (this.chats.get(chat) !== st) return;
        st.filling = false;
        this.ingestStored(chat, page.items, 'sync', after, page.has_more ? undefined : held);
        const again = page.has_more || st.refill;
        st.refill = false;
        if (again) this.fill(chat);
        else this.watchGap(chat, st);
        this.checkCaughtUp();
      })
      .catch((e: WeftError) => {
        if (this.chats.get(chat) !== st) return;
        st.filling = false;
        if (e.code !== 'disconnected' && e.code !== 'closed') this.onChatFailure(chat, e);
      });
  }

  private checkCaughtUp(): void {
    const conn = this.conn;
    if (!conn?.welcomed || conn.caughtUp) return;
    if (this.hellos.size > 0) return;
    // A gap timer with no gap open is a catch-up to retry: not caught up yet.
    for (const st of this.chats.values()) if (st.filling || st.gapTimer || this.gapOpen(st)) return;
    conn.caughtUp = true;
    this.emit('caught_up', { chats: [...this.chats.keys()] });
  }

  /**
   * Tracks `chat` from `after` (default 0: its whole history): its messages come
   * through `message`, in order, once. When connected, it is resumed at once.
   */
  track(chat: number, after = 0): void {
    const st = this.chats.get(chat);
    if (st) {
      if (after > st.position) {
        for (const n of [...st.buffer.keys()]) if (n <= after) st.buffer.delete(n);
        st.position = after;
        this.drain(chat, st);
      }
      return;
    }
    this.chatState(chat, after);
    if (this.conn?.welcomed) {
      if (this.conn.caughtUp) this.conn.caughtUp = false;
      this.sendHello([{ chat, after }]);
    }
  }

  /** Stops tracking `chat` (its live messages start it again, as an untracked chat would). */
  untrack(chat: number): void {
    const st = this.chats.get(chat);
    if (!st) return;
    if (st.gapTimer) clearTimeout(st.gapTimer);
    this.chats.delete(chat);
  }

  // ------------------------------------------------------------ outgoing frames

  private write(frame: Record<string, unknown>): boolean {
    const conn = this.conn;
    if (!conn?.welcomed) return false;
    try {
      conn.ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      this.log('warn', 'write failed', e);
      return false;
    }
  }

  private checkSize(frame: Record<string, unknown>): WeftError | undefined {
    const size = utf8Length(JSON.stringify(frame));
    if (size > this.opts.maxFrameBytes) {
      return new WeftError('frame_too_large', `the frame is ${size} bytes, over ${this.opts.maxFrameBytes}`);
    }
    return undefined;
  }

  private hold(ms: number): void {
    this.holdUntil = Math.max(this.holdUntil, now() + ms);
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.flush();
    }, Math.max(0, this.holdUntil - now()));
  }

  /** Writes queued requests and sends, as far as the connection and the rate limits allow. */
  private flush(): void {
    if (!this.conn?.welcomed) return;
    if (now() < this.holdUntil) {
      if (!this.holdTimer) this.hold(0);
      return;
    }
    while (this.queue.length > 0) {
      const p = this.queue.shift()!;
      if (!this.writeRequest(p)) return; // the socket refused it: the close follows
    }
    this.pumpSends();
  }

  private writeRequest(p: Pending): boolean {
    p.attempts++;
    p.written = true;
    this.pending.set(p.id, p);
    if (!this.write({ ...p.frame, id: p.id })) {
      this.pending.delete(p.id);
      p.written = false;
      this.queue.unshift(p);
      return false;
    }
    p.timer = setTimeout(() => {
      if (this.pending.get(p.id) !== p) return;
      this.pending.delete(p.id);
      p.reject(new WeftError('timeout', `no answer to ${String(p.frame.type)} within ${this.opts.requestTimeoutMs} ms`));
    }, this.opts.requestTimeoutMs);
    return true;
  }

  /**
   * Sends `frame` (a client frame without `id`) and resolves with its answer
   * (rejects with a `WeftError` for an `error` answer). The generic way to use
   * frames this version does not wrap.
   */
  request<T = ServerFrame>(
    frame: Record<string, unknown>,
    opts: { retryable?: boolean; internal?: boolean } = {},
  ): Promise<T> {
    if (this._state === 'closed') return Promise.reject(new WeftError('closed', 'the client was closed'));
    const tooLarge = this.checkSize(frame);
    if (tooLarge) return Promise.reject(tooLarge);
    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        id: this.nextId++,
        frame,
        resolve,
        reject,
        timer: undefined,
        retryable: opts.retryable ?? true,
        written: false,
        attempts: 0,
      };
      if (this.conn?.welcomed && now() >= this.holdUntil && (opts.internal || this.queue.length === 0)) {
        this.writeRequest(p);
      } else if (opts.internal && !this.conn?.welcomed) {
        reject(new WeftError('disconnected', 'not connected'));
      } else {
        this.queue.push(p);
        this.flush();
      }
    });
  }

  // ------------------------------------------------------------ sends

  /**
   * Sends a message; resolves with its ack once persisted. Retried with the
   * same `client_msg_id` across reconnects and rate limits until acked (or
   * `sendTimeoutMs`), so it is stored once. Rejects with a `WeftError` for a
   * refusal (`not_a_member`, `invalid_field`, …) or `close()`.
   */
  send(params: SendParams): Promise<SendAck> {
    if (this._state === 'closed') return Promise.reject(new WeftError('closed', 'the client was closed'));
    const clientMsgId = params.client_msg_id ?? randomId();
    const frame: Record<string, unknown> = { type: 'send', body: params.body, client_msg_id: clientMsgId };
    if (params.chat !== undefined) frame.chat = params.chat;
    if (params.recipients !== undefined) frame.recipients = params.recipients;
    if (params.reply_to !== undefined) frame.reply_to = params.reply_to;
    if (params.attachments !== undefined) frame.attachments = params.attachments;
    const tooLarge = this.checkSize({ ...frame, id: 2 ** 31 });
    if (tooLarge) return Promise.reject(tooLarge);
    return new Promise<SendAck>((resolve, reject) => {
      const entry: SendEntry = {
        frame,
        clientMsgId,
        resolve,
        reject,
        state: 'queued',
        reqId: 0,
        attemptTimer: undefined,
        deadline: undefined,
        attempts: 0,
        notBefore: 0,
      };
      if (this.opts.sendTimeoutMs > 0) {
        entry.deadline = setTimeout(() => {
          this.removeSend(entry);
          reject(new WeftError('timeout', `not acked within ${this.opts.sendTimeoutMs} ms`));
        }, this.opts.sendTimeoutMs);
      }
      this.sends.push(entry);
      this.pumpSends();
    });
  }

  private removeSend(entry: SendEntry): void {
    const i = this.sends.indexOf(entry);
    if (i >= 0) this.sends.splice(i, 1);
    if (entry.reqId) this.sendsById.delete(entry.reqId);
    if (entry.attemptTimer) clearTimeout(entry.attemptTimer);
    if (entry.deadline) clearTimeout(entry.deadline);
  }

  private pumpSends(): void {
    if (!this.conn?.welcomed) return;
    if (now() < this.holdUntil) {
      if (!this.holdTimer) this.hold(0);
      return;
    }
    const window = now() < this.cautiousUntil ? 1 : this.opts.maxInflightSends;
    let inflight = 0;
    for (const s of this.sends) if (s.state === 'inflight') inflight++;
    let wake = Infinity;
    for (const s of this.sends) {
      if (inflight >= window) break;
      if (s.state !== 'queued') continue;
      if (s.notBefore > now()) {
        wake = Math.min(wake, s.notBefore);
        continue;
      }
      s.reqId = this.nextId++;
      s.attempts++;
      if (!this.write({ ...s.frame, id: s.reqId })) return;
      s.state = 'inflight';
      this.sendsById.set(s.reqId, s);
      inflight++;
      s.attemptTimer = setTimeout(() => {
        // No answer on this connection: ask again with the same client_msg_id.
        if (s.state !== 'inflight' || this.sendsById.get(s.reqId) !== s) return;
        this.sendsById.delete(s.reqId);
        s.state = 'queued';
        this.pumpSends();
      }, this.opts.requestTimeoutMs);
    }
    if (wake < Infinity && !this.sendWakeTimer) {
      this.sendWakeTimer = setTimeout(() => {
        this.sendWakeTimer = undefined;
        this.pumpSends();
      }, Math.max(0, wake - now()));
    }
  }

  private onSendAck(s: SendEntry, ack: AckFrame): void {
    this.removeSend(s);
    const result: SendAck = { chat: ack.chat, seq: ack.seq ?? 0, client_msg_id: s.clientMsgId };
    if (this.opts.echoOwnMessages && ack.seq !== undefined) this.echo(s, ack);
    s.resolve(result);
    this.pumpSends();
  }

  /** The app's own message, which the server does not send back to this session. */
  private echo(s: SendEntry, ack: AckFrame): void {
    const seq = ack.seq!;
    const st = this.chats.get(ack.chat);
    if (st && seq <= st.position && !st.skipped.has(seq)) return;
    if (Array.isArray(s.frame.attachments) && s.frame.attachments.length > 0) {
      // Its files' names and URLs are only known to the server: read it back.
      if (!st) this.chatState(ack.chat, seq - 1);
      this.request<MessagesFrame>({ type: 'sync', chat: ack.chat, after: seq - 1, limit: 1 }, { internal: true })
        .then((page) => this.ingestStored(ack.chat, page.items, 'sync', seq - 1))
        .catch(() => this.watchGap(ack.chat, this.chatState(ack.chat, seq - 1)));
      return;
    }
    const body = String(s.frame.body);
    const m: Message = {
      chat: ack.chat,
      seq,
      sender: this.welcome?.user ?? null,
      body,
      sent_at: new Date().toISOString(),
      client_msg_id: s.clientMsgId,
      reply_to: (s.frame.reply_to as number | undefined) ?? null,
    };
    const mentions = mentionsOf(body);
    if (mentions.length > 0) m.mentions = mentions;
    this.ingest(ack.chat, m, 'own');
  }

  private onSendError(s: SendEntry, err: WeftError): void {
    this.sendsById.delete(s.reqId);
    if (s.attemptTimer) clearTimeout(s.attemptTimer);
    s.attemptTimer = undefined;
    if (SEND_RETRY_CODES.has(err.code)) {
      s.state = 'queued';
      if (err.code === 'rate_limited') {
        // The user's bucket: every send waits, then one at a time for a while.
        this.cautiousUntil = now() + 10_000;
        this.hold(err.retryAfterMs ?? 1_000);
      } else {
        // This send only (still committing elsewhere, or a service failing): ask again later.
        s.notBefore = now() + (err.retryAfterMs ?? Math.min(2_000, 100 * 2 ** Math.min(s.attempts, 4)));
        this.pumpSends();
      }
      return;
    }
    this.removeSend(s);
    s.reject(err);
    this.pumpSends();
  }

  // ------------------------------------------------------------ the other client frames

  /** History after `after` (up to `limit`, 1–500), read forward; newer messages than the chat's position also come through `message`. */
  async sync(chat: number, after: number, limit = 100): Promise<MessagesFrame> {
    const held = this.newestHeld(this.chatState(chat, after));
    const page = await this.request<MessagesFrame>({ type: 'sync', chat, after, limit });
    if (this.chats.has(chat)) this.ingestStored(chat, page.items, 'sync', after, page.has_more ? undefined : held);
    return page;
  }

  /**
   * History read backward: the newest `limit` messages (1–500, default 50) numbered
   * below `before`, or the chat's newest without it, oldest first; `has_more` says
   * older ones exist (page on with `before: page.items[0].seq`). The same messages as
   * the REST history (`WeftRest.listMessages(chat, {before, per_page})`). Items newer
   * than a tracked chat's position also come through `message`; an untracked chat
   * stays untracked.
   */
  async history(chat: number, options: HistoryOptions = {}): Promise<MessagesFrame> {
    const limit = options.limit ?? 50;
    const from = options.before === undefined ? { latest: true } : { before: options.before };
    const page = await this.request<MessagesFrame>({ type: 'sync', chat, ...from, limit });
    const oldest = page.items[0];
    if (oldest && this.chats.has(chat)) this.ingestStored(chat, page.items, 'sync', oldest.seq - 1);
    return page;
  }

  /** Says the user is typing (at most once per `typingIntervalMs` per chat; dropped while disconnected). */
  typing(chat: number): void {
    const last = this.lastTyping.get(chat) ?? 0;
    if (now() - last < this.opts.typingIntervalMs || !this.conn?.welcomed || now() < this.holdUntil) return;
    this.lastTyping.set(chat, now());
    this.write({ type: 'typing', chat });
  }

  /** Messages up to `seq` reached this device. */
  async delivered(chat: number, seq: number): Promise<void> {
    await this.request({ type: 'delivered', chat, seq });
  }

  /** Messages up to `seq` were read (moves `delivered` too). */
  async read(chat: number, seq: number): Promise<void> {
    await this.request({ type: 'read', chat, seq });
  }

  /** Edits one of the user's own messages. */
  async edit(chat: number, seq: number, body: string): Promise<void> {
    await this.request({ type: 'edit', chat, seq, body }, { retryable: false });
  }

  /** Deletes a message (own, or anyone's as admin or owner). */
  async deleteMessage(chat: number, seq: number): Promise<void> {
    await this.request({ type: 'delete', chat, seq }, { retryable: false });
  }

  /** Reacts to a message (idempotent). */
  async react(chat: number, seq: number, emoji: string): Promise<void> {
    await this.request({ type: 'react', chat, seq, emoji });
  }

  /** Takes a reaction back (idempotent). */
  async unreact(chat: number, seq: number, emoji: string): Promise<void> {
    await this.request({ type: 'unreact', chat, seq, emoji });
  }

  /** Adds users to a group as members (admin or owner). */
  async addMembers(chat: number, users: string[]): Promise<void> {
    await this.request({ type: 'add_members', chat, users });
  }

  /** Removes a member from a group (admin or owner). */
  async removeMember(chat: number, user: string): Promise<void> {
    await this.request({ type: 'remove_member', chat, user }, { retryable: false });
  }

  /** Sets a member's role (owner). */
  async setRole(chat: number, user: string, role: Role): Promise<void> {
    await this.request({ type: 'set_role', chat, user, role });
  }

  /** Changes a chat's name, description or metadata. */
  async updateChat(chat: number, change: ChatInfoChange): Promise<void> {
    await this.request({ type: 'update_chat', chat, ...change });
  }

  /** Leaves a group; the last owner names a `successor`. */
  async leave(chat: number, successor?: string): Promise<void> {
    const frame: Record<string, unknown> = { type: 'leave', chat };
    if (successor !== undefined) frame.successor = successor;
    await this.request(frame, { retryable: false });
    this.untrack(chat);
  }

  /** Searches the user's chats (the REST query language). */
  search(query: string, params: SearchParams = {}): Promise<SearchResultsFrame> {
    return this.request<SearchResultsFrame>({ type: 'search', query, ...params });
  }

  /** Asks for an upload URL for a file to send in `chat`. */
  async upload(chat: number, params: UploadParams): Promise<UploadGrant> {
    const f = await this.request<UploadReadyFrame>({ type: 'upload', chat, ...params }, { retryable: false });
    return f.attachment;
  }

  /**
   * Uploads a file in one call: `upload`, then PUT of the bytes to the granted
   * URL (relative URLs resolve against the node). Resolves with the attachment
   * id to give `send`'s `attachments`.
   */
  async uploadFile(
    chat: number,
    data: Blob | ArrayBuffer | Uint8Array,
    meta: { name: string; content_type: string },
  ): Promise<string> {
    const size = data instanceof Blob ? data.size : data.byteLength;
    const grant = await this.upload(chat, { ...meta, size });
    const url = new URL(grant.upload_url, httpBase(this.conn?.url ?? this.url) + '/').toString();
    if (!this.fetchFn) throw new WeftError('invalid_options', 'no fetch available');
    const res = await this.fetchFn(url, {
      method: 'PUT',
      headers: { 'content-type': meta.content_type },
      body: data as BodyInit,
    });
    if (!res.ok) throw await httpError(res);
    return grant.id;
  }

  /** Registers this device for push notifications while the user is away. */
  registerDevice(device_id: string, provider: PushProvider, token: string): Promise<DeviceRegisteredFrame> {
    return this.request<DeviceRegisteredFrame>({ type: 'register_device', device_id, provider, token });
  }

  /** Forgets a device. */
  unregisterDevice(device_id: string): Promise<DeviceUnregisteredFrame> {
    return this.request<DeviceUnregisteredFrame>({ type: 'unregister_device', device_id }, { retryable: false });
  }

  /** Reads (no argument) or changes the user's notification settings; resolves with them as they are now. */
  async notificationSettings(change: NotificationSettingsChange = {}): Promise<NotificationSettings> {
    const f = await this.request<NotificationSettingsFrame>({ type: 'notification_settings', ...change });
    const { type: _t, id: _i, ...settings } = f;
    return settings;
  }
}

function stripType(frame: any): Message {
  const { type: _t, ...m } = frame;
  return m as Message;
}

// ================================================================ REST

export interface WeftRestOptions {
  /** The node's HTTP address, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The application's token (the path segment of every application route). */
  appToken?: string;
  /** `server.admin_key`, for creating applications and `GET /api/v1/cluster`. */
  adminKey?: string;
  fetch?: typeof fetch;
  /** Each call fails with `timeout` after this long. Default 30 000 ms. */
  timeoutMs?: number;
}

async function httpError(res: Response): Promise<WeftHttpError> {
  let body: any;
  const text = await res.text().catch(() => '');
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  const code = body?.error?.code ?? (res.status === 431 ? 'headers_too_large' : `http_${res.status}`);
  const message = body?.error?.message ?? `HTTP ${res.status}`;
  const retry = res.headers.get('retry-after');
  const retryAfterMs = retry && /^\d+$/.test(retry) ? Number(retry) * 1000 : undefined;
  return new WeftHttpError(res.status, code, message, body, retryAfterMs);
}

const enc = encodeURIComponent;

function query(params: Record<string, unknown> | undefined): string {
  if (!params) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * The REST API for an application's backend (the app token is its secret:
 * never ship it to browsers). Every method resolves with the parsed answer or
 * rejects with a `WeftHttpError` carrying `status` and the stable `code`.
 */
export class WeftRest {
  readonly baseUrl: string;
  appToken: string | undefined;
  private readonly adminKey: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(options: WeftRestOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.appToken = options.appToken;
    this.adminKey = options.adminKey;
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new WeftError('invalid_options', 'no fetch available');
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** A copy bound to another application. */
  forApp(appToken: string): WeftRest {
    const o: WeftRestOptions = { baseUrl: this.baseUrl, appToken, fetch: this.fetchFn, timeoutMs: this.timeoutMs };
    if (this.adminKey !== undefined) o.adminKey = this.adminKey;
    return new WeftRest(o);
  }

  /** Any call: `path` under the base URL (e.g. `/api/v1/…`). */
  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (body !== undefined) h['content-type'] = 'application/json';
    if (this.adminKey && !h.authorization) h.authorization = `Bearer ${this.adminKey}`;
    const ctl = typeof AbortController !== 'undefined' ? new AbortController() : undefined;
    const timer = ctl ? setTimeout(() => ctl.abort(), this.timeoutMs) : undefined;
    let res: Response;
    try {
      const init: RequestInit = { method, headers: h };
      if (body !== undefined) init.body = JSON.stringify(body);
      if (ctl) init.signal = ctl.signal;
      res = await this.fetchFn(this.baseUrl + path, init);
    } catch (e) {
      if (timer) clearTimeout(timer);
      if (ctl?.signal.aborted) throw new WeftError('timeout', `${method} ${path}: no answer within ${this.timeoutMs} ms`);
      throw new WeftError('network', `${method} ${path}: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    try {
      if (!res.ok) throw await httpError(res);
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new WeftError('bad_response', `${method} ${path}: the answer is not JSON`, { status: res.status, detail: text });
      }
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private app(path = ''): string {
    if (!this.appToken) throw new WeftError('invalid_options', 'this call needs `appToken`');
    return `/api/v1/applications/${enc(this.appToken)}${path}`;
  }
  private chat(chat: number, path = ''): string {
    return this.app(`/chats/${chat}${path}`);
  }
  private msg(chat: number, n: number, path = ''): string {
    return this.chat(chat, `/messages/${n}${path}`);
  }

  // applications
  /** `POST /applications`; the answer carries `token` and `secret` (shown once). Sets `appToken` when unset. */
  async createApplication(p: { name: string; description?: string; metadata?: Record<string, unknown> }): Promise<CreatedApplication> {
    const app = await this.call<CreatedApplication>('POST', '/api/v1/applications', p);
    if (!this.appToken) this.appToken = app.token;
    return app;
  }
  getApplication(): Promise<Application> {
    return this.call('GET', this.app());
  }
  updateApplication(p: {
    name?: string;
    jwks_url?: string | null;
    user_groups?: 'open' | 'backend_only';
    description?: string | null;
    metadata?: Record<string, unknown> | null;
  }): Promise<Application> {
    return this.call('PATCH', this.app(), p);
  }
  /** A new signing secret: tokens signed with the old one stop working (sessions close with 4001). */
  rotateSecret(): Promise<{ secret: string }> {
    return this.call('POST', this.app('/secret'));
  }
  /** A user token (HS256 JWT), 1 h by default, 30 days at most. */
  createUserToken(user: string, p: { ttl_seconds?: number } = {}): Promise<UserToken> {
    return this.call('POST', this.app(`/users/${enc(user)}/tokens`), p);
  }

  // chats
  createChat(p: { name?: string; description?: string; metadata?: Record<string, unknown>; created_by?: string } = {}): Promise<Chat> {
    return this.call('POST', this.app('/chats'), p);
  }
  listChats(p: ListParams = {}): Promise<Chat[]> {
    return this.call('GET', this.app('/chats') + query(p as Record<string, unknown>));
  }
  getChat(chat: number): Promise<Chat> {
    return this.call('GET', this.chat(chat));
  }
  updateChat(chat: number, change: ChatInfoChange): Promise<Chat> {
    return this.call('PATCH', this.chat(chat), change);
  }
  userChats(user: string, p: ListParams = {}): Promise<Chat[]> {
    return this.call('GET', this.app(`/users/${enc(user)}/chats`) + query(p as Record<string, unknown>));
  }

  // members
  listMembers(chat: number): Promise<Member[]> {
    return this.call('GET', this.chat(chat, '/members'));
  }
  /** Adds a member (as `role`, default member) or changes a member's role. */
  putMember(chat: number, user: string, p: { role?: Role } = {}): Promise<void> {
    return this.call('PUT', this.chat(chat, `/members/${enc(user)}`), p);
  }
  removeMember(chat: number, user: string): Promise<void> {
    return this.call('DELETE', this.chat(chat, `/members/${enc(user)}`));
  }
  readState(chat: number): Promise<ReadState[]> {
    return this.call('GET', this.chat(chat, '/read_state'));
  }
  presence(user: string): Promise<Presence> {
    return this.call('GET', this.app(`/users/${enc(user)}/presence`));
  }

  // messages
  /** Posts a message (as `sender`, or as the backend); `idempotencyKey` makes retries safe. */
  postMessage(
    chat: number,
    p: { body: string; sender?: string; reply_to?: number; attachments?: string[] },
    opts: { idempotencyKey?: string } = {},
  ): Promise<RestMessage> {
    const headers: Record<string, string> = {};
    if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
    return this.call('POST', this.chat(chat, '/messages'), p, headers);
  }
  /** Newest first; `before`/`after` bound the numbers. */
  listMessages(chat: number, p: MessageListParams = {}): Promise<RestMessage[]> {
    return this.call('GET', this.chat(chat, '/messages') + query(p as Record<string, unknown>));
  }
  getMessage(chat: number, n: number, p: { user?: string } = {}): Promise<RestMessage> {
    return this.call('GET', this.msg(chat, n) + query(p));
  }
  editMessage(chat: number, n: number, body: string): Promise<RestMessage> {
    return this.call('PATCH', this.msg(chat, n), { body });
  }
  deleteMessage(chat: number, n: number): Promise<void> {
    return this.call('DELETE', this.msg(chat, n));
  }
  replies(chat: number, n: number, p: { after?: number; per_page?: number; user?: string } = {}): Promise<RestMessage[]> {
    return this.call('GET', this.msg(chat, n, '/replies') + query(p));
  }
  versions(chat: number, n: number): Promise<MessageVersion[]> {
    return this.call('GET', this.msg(chat, n, '/versions'));
  }
  reactions(chat: number, n: number): Promise<Record<string, string[]>> {
    return this.call('GET', this.msg(chat, n, '/reactions'));
  }
  react(chat: number, n: number, emoji: string, user: string): Promise<RestMessage> {
    return this.call('PUT', this.msg(chat, n, `/reactions/${enc(emoji)}/${enc(user)}`));
  }
  unreact(chat: number, n: number, emoji: string, user: string): Promise<RestMessage> {
    return this.call('DELETE', this.msg(chat, n, `/reactions/${enc(emoji)}/${enc(user)}`));
  }
  searchChat(chat: number, q: string, p: ListParams & { user?: string } = {}): Promise<RestSearchHit[]> {
    return this.call('GET', this.chat(chat, '/messages/search') + query({ query: q, ...p }));
  }
  searchUser(
    user: string,
    q: string,
    p: ListParams & { chat?: number; sender?: string; after?: string; before?: string } = {},
  ): Promise<RestSearchHit[]> {
    return this.call('GET', this.app(`/users/${enc(user)}/messages/search`) + query({ query: q, ...p }));
  }

  // attachments
  createAttachment(chat: number, p: { name: string; content_type: string; size: number; created_by?: string }): Promise<UploadGrant> {
    return this.call('POST', this.chat(chat, '/attachments'), p);
  }
  /** PUTs the bytes to an upload URL (relative URLs resolve against the base URL). */
  async uploadBytes(uploadUrl: string, data: Blob | ArrayBuffer | Uint8Array, contentType: string): Promise<void> {
    const res = await this.fetchFn(new URL(uploadUrl, this.baseUrl + '/').toString(), {
      method: 'PUT',
      headers: { 'content-type': contentType },
      body: data as BodyInit,
    });
    if (!res.ok) throw await httpError(res);
    await res.body?.cancel().catch(() => {});
  }

  // webhooks
  createWebhook(p: { url: string; events: string[] }): Promise<Webhook> {
    return this.call('POST', this.app('/webhooks'), p);
  }
  async listWebhooks(): Promise<Webhook[]> {
    return (await this.call<{ webhooks: Webhook[] }>('GET', this.app('/webhooks'))).webhooks;
  }
  getWebhook(id: string): Promise<Webhook> {
    return this.call('GET', this.app(`/webhooks/${enc(id)}`));
  }
  updateWebhook(id: string, p: { url?: string; events?: string[]; enabled?: true }): Promise<Webhook> {
    return this.call('PATCH', this.app(`/webhooks/${enc(id)}`), p);
  }
  rotateWebhook(id: string): Promise<Webhook> {
    return this.call('POST', this.app(`/webhooks/${enc(id)}/rotate`));
  }
  deleteWebhook(id: string): Promise<void> {
    return this.call('DELETE', this.app(`/webhooks/${enc(id)}`));
  }
  replayWebhook(id: string, p: { chat: number; after?: number }): Promise<{ queued: number; through: number }> {
    return this.call('POST', this.app(`/webhooks/${enc(id)}/replay`), p);
  }
  webhookDeliveries(id: string): Promise<{ webhook: string; deliveries: WebhookDelivery[] }> {
    return this.call('GET', this.app(`/webhooks/${enc(id)}/deliveries`));
  }

  // devices and notification settings
  putDevice(user: string, deviceId: string, p: { provider: PushProvider; token: string }): Promise<Device> {
    return this.call('PUT', this.app(`/users/${enc(user)}/devices/${enc(deviceId)}`), p);
  }
  async listDevices(user: string): Promise<Device[]> {
    return (await this.call<{ devices: Device[] }>('GET', this.app(`/users/${enc(user)}/devices`))).devices;
  }
  deleteDevice(user: string, deviceId: string): Promise<void> {
    return this.call('DELETE', this.app(`/users/${enc(user)}/devices/${enc(deviceId)}`));
  }
  getNotificationSettings(user: string): Promise<NotificationSettings> {
    return this.call('GET', this.app(`/users/${enc(user)}/notification_settings`));
  }
  updateNotificationSettings(user: string, change: NotificationSettingsChange): Promise<NotificationSettings> {
    return this.call('PATCH', this.app(`/users/${enc(user)}/notification_settings`), change);
  }

  // the node
  /** `GET /api/v1/me` with a user token: who it names. */
  me(userToken: string): Promise<{ user: string; app: string }> {
    return this.call('GET', '/api/v1/me', undefined, { authorization: `Bearer ${userToken}` });
  }
  /** The cluster's live members (admin key). */
  cluster(): Promise<unknown> {
    return this.call('GET', '/api/v1/cluster');
  }
  /** `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the node's REST API. */
  openapi(): Promise<Record<string, unknown>> {
    return this.call('GET', '/api/v1/openapi.json');
  }
  /** True when `/readyz` answers 200. */
  async ready(): Promise<boolean> {
    try {
      const res = await this.fetchFn(this.baseUrl + '/readyz');
      await res.body?.cancel().catch(() => {});
      return res.ok;
    } catch {
      return false;
    }
  }
}

/** The same class, by the name backends look for. */
export { WeftRest as WeftAdmin };
