// weft-client: a WebSocket client for weft (docs/protocol.md) and REST helpers
// for application backends (README.md, "Endpoints"). No runtime dependencies:
// `WebSocket` and `fetch` as browsers and Node 20+ have them (Node 20 needs
// `--experimental-websocket`, or pass a WebSocket constructor).
//
// Everything that runs is in this one file, so that `dist/index.js` can be
// served alone (the node embeds it for its web chat); `types.ts` is types only.
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
    code;
    /** The HTTP status, for REST errors (and a refused handshake). */
    status;
    /** When the server said to retry. */
    retryAfterMs;
    /** The request's id, for WebSocket errors. */
    requestId;
    /** The chat a catch-up (`hello`) or a fill failed for: the `error` event of a chat no longer tracked. */
    chat;
    /** The error body or frame as received. */
    detail;
    constructor(code, message, extra = {}) {
        super(message);
        this.name = 'WeftError';
        this.code = code;
        this.status = extra.status;
        this.retryAfterMs = extra.retryAfterMs;
        this.requestId = extra.requestId;
        this.chat = extra.chat;
        this.detail = extra.detail;
        if (extra.cause !== undefined)
            this.cause = extra.cause;
    }
    /** Whether retrying the same request later can succeed. */
    get retryable() {
        return RETRYABLE_CODES.has(this.code) || (this.status !== undefined && this.status >= 500);
    }
}
/** A REST call answered with an error status. */
export class WeftHttpError extends WeftError {
    constructor(status, code, message, detail, retryAfterMs) {
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
/** A tiny typed event emitter that works the same in browsers and Node. */
class Emitter {
    listeners = new Map();
    /** Calls `fn` for every `event`; returns a function that removes it. */
    on(event, fn) {
        let set = this.listeners.get(event);
        if (!set)
            this.listeners.set(event, (set = new Set()));
        set.add(fn);
        return () => this.off(event, fn);
    }
    /** Calls `fn` for the next `event` only. */
    once(event, fn) {
        const off = this.on(event, (p, i) => {
            off();
            fn(p, i);
        });
        return off;
    }
    off(event, fn) {
        this.listeners.get(event)?.delete(fn);
    }
    /** Resolves with the next `event` for which `filter` holds (rejects after `timeoutMs`, if given). */
    waitFor(event, filter = () => true, timeoutMs = 0) {
        return new Promise((resolve, reject) => {
            let timer;
            const off = this.on(event, (p) => {
                if (!filter(p))
                    return;
                off();
                if (timer)
                    clearTimeout(timer);
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
    emit(event, payload, info) {
        const set = this.listeners.get(event);
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(payload, info);
            }
            catch (e) {
                // A listener's bug must not break the client's state machine.
                setTimeout(() => {
                    throw e;
                }, 0);
            }
        }
    }
}
const now = () => Date.now();
function randomId() {
    const c = globalThis.crypto;
    if (c && typeof c.randomUUID === 'function')
        return c.randomUUID();
    let s = '';
    for (let i = 0; i < 4; i++)
        s += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
    return s;
}
function utf8Length(s) {
    if (typeof TextEncoder !== 'undefined')
        return new TextEncoder().encode(s).length;
    return unescape(encodeURIComponent(s)).length;
}
/** The users a body mentions, by the server's rule (src/model.rs `mentions`). */
export function mentionsOf(body) {
    const idChar = (c) => c !== undefined && /[A-Za-z0-9_.@:-]/.test(c);
    const found = [];
    const chars = Array.from(body);
    for (let i = 0; i < chars.length; i++) {
        if (chars[i] !== '@' || idChar(chars[i - 1]))
            continue;
        let end = i + 1;
        while (end < chars.length && idChar(chars[end]) && chars[end] !== '@')
            end++;
        const name = chars.slice(i + 1, end).join('').replace(/[.:-]+$/, '');
        if (name.length >= 1 && name.length <= 128 && !found.includes(name)) {
            found.push(name);
            if (found.length === 50)
                break;
        }
    }
    return found;
}
/** The `exp` of a JWT, in ms, when it can be read. */
function jwtExpiry(token) {
    const part = token.split('.')[1];
    if (!part || typeof atob !== 'function')
        return undefined;
    try {
        const json = atob(part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4));
        const exp = JSON.parse(json).exp;
        return typeof exp === 'number' ? exp * 1000 : undefined;
    }
    catch {
        return undefined;
    }
}
/** `http://host:8080` or `ws://host:8080/ws` → the WebSocket URL. */
export function wsUrl(url) {
    const u = new URL(url, globalThis.location?.href);
    if (u.protocol === 'http:')
        u.protocol = 'ws:';
    else if (u.protocol === 'https:')
        u.protocol = 'wss:';
    if (u.pathname === '' || u.pathname === '/')
        u.pathname = '/ws';
    return u.toString();
}
/** The HTTP base of a node from its WebSocket URL (`ws://h/ws` → `http://h`). */
function httpBase(ws) {
    const u = new URL(ws);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = u.pathname.replace(/\/ws\/?$/, '');
    u.search = '';
    u.hash = '';
    return u.toString().replace(/\/$/, '');
}
// An internal marker: a number known not to be stored (skipped for good).
const ABSENT = Symbol('absent');
/**
 * A user's WebSocket session with weft that survives reconnects: it resumes
 * chats with `hello`, fills gaps with `sync`, retries unacked sends with their
 * `client_msg_id`, backs off as the server says, and refreshes its token.
 */
export class WeftClient extends Emitter {
    urls;
    urlIndex = 0;
    opts;
    backoff;
    WS;
    fetchFn;
    getTokenFn;
    log;
    token;
    tokenBad = false;
    _state = 'idle';
    conn;
    attempt = 0;
    /** Reconnects made at once in the current window of `stableAfterMs` (a few, then back off). */
    quickRetries = 0;
    quickWindowStart = 0;
    reconnectTimer;
    /** A connection attempt is getting its token. */
    opening = false;
    stopped = false;
    welcome;
    connectWaiters = [];
    nextId = 1;
    helloSeq = 0;
    pending = new Map();
    queue = [];
    sends = [];
    sendsById = new Map();
    holdUntil = 0;
    holdTimer;
    sendWakeTimer;
    /** Until then, one send at a time: the window that just hit the rate limit must not keep striking. */
    cautiousUntil = 0;
    hellos = new Map();
    chats = new Map();
    lastTyping = new Map();
    constructor(options) {
        super();
        const urls = Array.isArray(options.url) ? options.url : [options.url];
        if (urls.length === 0)
            throw new WeftError('invalid_options', 'give at least one url');
        this.urls = urls.map(wsUrl);
        if (!options.token && !options.getToken)
            throw new WeftError('invalid_options', 'give `token` or `getToken`');
        this.token = options.token;
        this.getTokenFn = options.getToken;
        this.WS = options.WebSocket ?? globalThis.WebSocket;
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
        this.log = options.logger ?? (() => { });
        for (const [chat, after] of Object.entries(options.positions ?? {}))
            this.track(Number(chat), after);
        if (options.autoConnect)
            this.connect().catch(() => { });
    }
    // ------------------------------------------------------------ public state
    /** `idle`, `connecting`, `connected`, `reconnecting` or `closed`. */
    get state() {
        return this._state;
    }
    /** The `welcome` of the current connection (user, session, node), if connected. */
    get session() {
        return this.conn?.welcomed ? this.welcome : undefined;
    }
    /** The signed-in user, once welcomed. */
    get user() {
        return this.welcome?.user;
    }
    /** The URL of the current (or last) connection. */
    get url() {
        return this.urls[this.urlIndex];
    }
    /** The last contiguous `seq` delivered of `chat` (undefined when untracked). */
    position(chat) {
        return this.chats.get(chat)?.position;
    }
    /** Every tracked chat's position: what to store to resume later (`positions`). */
    positions() {
        const out = {};
        for (const [chat, st] of this.chats)
            out[chat] = st.position;
        return out;
    }
    /** Sends not acked yet. */
    get pendingSends() {
        return this.sends.length;
    }
    // ------------------------------------------------------------ connecting
    /**
     * Connects (and keeps reconnecting until `close()`); resolves with the first
     * welcome. Rejects only when the client stops for good (a 4000–4099 close,
     * 1007, no token).
     */
    connect() {
        if (this._state === 'closed')
            return Promise.reject(new WeftError('closed', 'the client was closed'));
        const p = new Promise((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
        if (this.conn?.welcomed && this.welcome) {
            this.settleConnect({ ...this.welcome, url: this.conn.url });
        }
        else if (this._state === 'idle') {
            this.stopped = false;
            void this.open();
        }
        return p;
    }
    /** Closes the connection for good: pending requests and sends reject with `closed`. */
    close(code = 1000, reason = 'client closed') {
        if (this._state === 'closed')
            return;
        this.stopped = true;
        this.finish(code, reason, undefined);
    }
    /** Drops the current connection and reconnects at once (for tests and "retry now" buttons). */
    reconnect() {
        if (this.stopped)
            return;
        if (this.conn) {
            const conn = this.conn;
            try {
                conn.ws.close(1000, 'reconnect');
            }
            catch {
                /* closed already */
            }
            this.onClose(conn, 4200, 'client reconnect');
        }
        else {
            if (this.reconnectTimer)
                clearTimeout(this.reconnectTimer);
            this.reconnectTimer = undefined;
            void this.open();
        }
    }
    setState(s) {
        if (this._state === s)
            return;
        this._state = s;
        this.emit('state', s);
    }
    async currentToken() {
        const exp = this.token ? jwtExpiry(this.token) : undefined;
        const expired = exp !== undefined && exp - now() < 5_000;
        if (this.token && !this.tokenBad && !expired)
            return this.token;
        if (!this.getTokenFn) {
            if (this.token && !this.tokenBad)
                return this.token;
            throw new WeftError('invalid_token', 'the token was refused and no getToken was given');
        }
        const reason = this.token ? 'expired' : 'initial';
        const req = this.token ? { reason, previous: this.token } : { reason };
        let token;
        try {
            token = await this.getTokenFn(req);
        }
        catch (e) {
            throw new WeftError('token_unavailable', `getToken failed: ${e?.message ?? e}`, { cause: e });
        }
        if (typeof token !== 'string' || token.length === 0) {
            throw new WeftError('token_unavailable', 'getToken gave no token');
        }
        this.token = token;
        this.tokenBad = false;
        if (reason === 'expired')
            this.emit('token_refreshed', { reason });
        return token;
    }
    async open() {
        if (this.stopped || this.opening || this.conn)
            return;
        this.opening = true;
        try {
            await this.openNow();
        }
        finally {
            this.opening = false;
        }
    }
    async openNow() {
        this.setState(this.attempt === 0 && !this.welcome ? 'connecting' : 'reconnecting');
        const url = this.urls[this.urlIndex];
        this.emit('connecting', { url, attempt: this.attempt });
        let token;
        try {
            token = await this.currentToken();
        }
        catch (e) {
            const err = e;
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
        if (this.stopped)
            return;
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
        let ws;
        try {
            ws = new this.WS(u.toString());
        }
        catch (e) {
            this.log('warn', 'WebSocket constructor threw', e);
            this.scheduleReconnect(this.backoffDelay(), 1006, String(e), url, true);
            return;
        }
        const conn = {
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
            if (this.conn !== conn || conn.welcomed)
                return;
            this.log('warn', 'no welcome in time', { url });
            try {
                ws.close(4000, 'connect timeout');
            }
            catch {
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
                if (this.conn !== conn)
                    return;
                let frame;
                try {
                    frame = JSON.parse(line);
                }
                catch {
                    this.log('warn', 'a frame that is not JSON', line.slice(0, 200));
                    continue;
                }
                if (frame && typeof frame.type === 'string')
                    this.onFrame(conn, frame);
            }
        };
        ws.onerror = () => {
            // Some WebSockets (Node 20's) fire only `error`, never `close`, when the
            // handshake fails (connection refused, a 401): that is the close.
            if (!conn.openedAt)
                return this.onClose(conn, 1006, 'connection failed');
            setTimeout(() => {
                if (this.conn !== conn)
                    return;
                try {
                    ws.close();
                }
                catch {
                    /* ignore */
                }
                this.onClose(conn, 1006, 'connection error');
            }, 1_000);
        };
        ws.onclose = (ev) => this.onClose(conn, ev?.code ?? 1006, ev?.reason ?? '');
    }
    backoffDelay(floorAttempt = 0) {
        const n = Math.max(this.attempt, floorAttempt);
        const base = Math.min(this.backoff.maxDelayMs, this.backoff.minDelayMs * Math.pow(this.backoff.factor, n));
        return Math.round(base * (1 - this.backoff.jitter * Math.random()));
    }
    /** No wait for the first few "reconnect now" closes; then the backoff, so a node that keeps closing is not hammered. */
    quickDelay() {
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
    scheduleReconnect(delayMs, code, reason, url, rotate = false) {
        if (this.stopped)
            return;
        if (rotate && this.urls.length > 1)
            this.urlIndex = (this.urlIndex + 1) % this.urls.length;
        this.attempt++;
        this.setState('reconnecting');
        this.emit('disconnected', { code, reason, url, willReconnect: true, delayMs });
        this.log('info', `reconnecting in ${delayMs} ms`, { code, reason, url });
        if (this.reconnectTimer)
            clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => {
            this.reconnectTimer = undefined;
            void this.open();
        }, delayMs);
    }
    /** A refused handshake: ask the node over HTTP why (401: the token; 503: draining). */
    async probeHandshake(url) {
        if (!this.fetchFn || !this.token)
            return 'other';
        try {
            const res = await this.fetchFn(`${httpBase(url)}/api/v1/me`, {
                headers: { authorization: `Bearer ${this.token}` },
            });
            try {
                await res.body?.cancel();
            }
            catch {
                /* ignore */
            }
            return res.status === 401 ? 'token' : 'other';
        }
        catch {
            return 'other';
        }
    }
    onClose(conn, code, reason) {
        if (this.conn !== conn)
            return;
        this.conn = undefined;
        if (conn.connectTimer)
            clearTimeout(conn.connectTimer);
        if (conn.heartbeat)
            clearInterval(conn.heartbeat);
        conn.ws.onclose = conn.ws.onmessage = conn.ws.onopen = conn.ws.onerror = null;
        const wasWelcomed = conn.welcomed;
        // A connection that caught up, or stayed up a while, worked: the backoff starts over.
        if (wasWelcomed && (conn.caughtUp || now() - conn.welcomedAt >= this.backoff.stableAfterMs))
            this.attempt = 0;
        this.dropConnectionState();
        if (this.stopped)
            return;
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
                if (this.stopped)
                    return;
                if (why === 'token') {
                    this.tokenBad = true;
                    if (!this.getTokenFn) {
                        this.stopped = true;
                        this.finish(4001, 'token refused', new WeftError('invalid_token', 'the token was refused and no getToken was given', { status: 401 }));
                        return;
                    }
                    this.scheduleReconnect(this.quickDelay(), 401, 'token refused', url);
                }
                else {
                    this.scheduleReconnect(this.backoffDelay(), code, reason, url, true);
                }
            });
            return;
        }
        // 1000/1001/1006/1011 and anything else: back off, another node if there is one.
        this.scheduleReconnect(this.backoffDelay(), code, reason, url, true);
    }
    /** Everything tied to the connection that just closed. */
    dropConnectionState() {
        this.hellos.clear();
        for (const st of this.chats.values()) {
            st.filling = false;
            if (st.gapTimer)
                clearTimeout(st.gapTimer);
            st.gapTimer = undefined;
        }
        for (const p of this.pending.values()) {
            if (p.timer)
                clearTimeout(p.timer);
            p.timer = undefined;
            if (p.retryable) {
                p.written = false;
                this.queue.push(p);
            }
            else {
                p.reject(new WeftError('disconnected', 'the connection closed before the answer'));
            }
        }
        this.pending.clear();
        this.queue.sort((a, b) => a.id - b.id);
        for (const s of this.sends) {
            if (s.attemptTimer)
                clearTimeout(s.attemptTimer);
            s.attemptTimer = undefined;
            s.state = 'queued';
        }
        this.sendsById.clear();
    }
    finish(code, reason, error) {
        if (this.reconnectTimer)
            clearTimeout(this.reconnectTimer);
        this.reconnectTimer = undefined;
        if (this.holdTimer)
            clearTimeout(this.holdTimer);
        this.holdTimer = undefined;
        if (this.sendWakeTimer)
            clearTimeout(this.sendWakeTimer);
        this.sendWakeTimer = undefined;
        const conn = this.conn;
        if (conn) {
            this.conn = undefined;
            if (conn.connectTimer)
                clearTimeout(conn.connectTimer);
            if (conn.heartbeat)
                clearInterval(conn.heartbeat);
            conn.ws.onclose = conn.ws.onmessage = conn.ws.onopen = conn.ws.onerror = null;
            try {
                conn.ws.close(code >= 4000 || code === 1000 ? code : 1000, reason.slice(0, 100));
            }
            catch {
                /* ignore */
            }
        }
        this.dropConnectionState();
        const closed = error ?? new WeftError('closed', 'the client was closed');
        for (const p of this.queue) {
            if (p.timer)
                clearTimeout(p.timer);
            p.reject(closed);
        }
        this.queue = [];
        for (const s of this.sends) {
            if (s.deadline)
                clearTimeout(s.deadline);
            s.reject(closed);
        }
        this.sends = [];
        for (const w of this.connectWaiters.splice(0))
            w.reject(closed);
        this.setState('closed');
        const url = this.urls[this.urlIndex];
        this.emit('disconnected', { code, reason, url, willReconnect: false, delayMs: 0 });
        this.emit('closed', error ? { code, reason, error } : { code, reason });
    }
    settleConnect(ev) {
        for (const w of this.connectWaiters.splice(0))
            w.resolve(ev);
    }
    // ------------------------------------------------------------ incoming frames
    onFrame(conn, frame) {
        conn.lastHeard = now();
        this.emit('frame', frame);
        switch (frame.type) {
            case 'welcome':
                return this.onWelcome(conn, frame);
            case 'message':
                this.ingest(frame.chat, stripType(frame), 'live');
                return;
            case 'messages':
                this.emit('messages', frame);
                return this.onMessages(frame);
            case 'ack':
                this.emit('ack', frame);
                return this.onAnswer(frame);
            case 'error':
                return this.onError(frame);
            case 'member_left':
                this.emit(frame.type, frame);
                if (frame.user === this.welcome?.user)
                    this.untrack(frame.chat);
                return;
            case 'resync':
                this.emit(frame.type, frame);
                return this.onResync(frame);
            case 'token_expiring':
                this.emit(frame.type, frame);
                void this.refreshInBand(conn);
                return;
            default:
                this.emit(frame.type, frame);
                if (frame.id !== undefined)
                    this.onAnswer(frame);
        }
    }
    onWelcome(conn, w) {
        conn.welcomed = true;
        conn.welcomedAt = now();
        if (conn.connectTimer)
            clearTimeout(conn.connectTimer);
        const beat = this.opts.heartbeatMs;
        if (beat > 0)
            conn.heartbeat = setInterval(() => this.probe(conn), Math.max(50, beat / 4));
        this.welcome = w;
        this.setState('connected');
        const ev = { ...w, url: conn.url };
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
    async refreshInBand(conn) {
        if (!this.getTokenFn || conn.refreshing || this.conn !== conn || !conn.welcomed)
            return;
        const previous = this.token;
        conn.refreshing = true;
        try {
            let token;
            try {
                token = await this.getTokenFn(previous ? { reason: 'expiring', previous } : { reason: 'expiring' });
            }
            catch (e) {
                this.log('warn', 'getToken failed before the token expired: reconnecting at expiry', e);
                return;
            }
            if (typeof token !== 'string' || token.length === 0 || token === previous) {
                this.log('warn', 'getToken gave no new token before the token expired: reconnecting at expiry');
                return;
            }
            if (this.conn !== conn || this.stopped)
                return;
            try {
                await this.request({ type: 'refresh', token }, { retryable: false, internal: true });
            }
            catch (e) {
                this.log('warn', 'the node refused the refreshed token: reconnecting at expiry', e);
                return;
            }
            // A reconnect meanwhile took a token of its own: keep that one.
            if (this.conn !== conn || this.token !== previous)
                return;
            this.token = token;
            this.tokenBad = false;
            this.emit('token_refreshed', { reason: 'expiring' });
        }
        finally {
            conn.refreshing = false;
        }
    }
    /** Asks a quiet node something small; no answer in time: the connection is dead. */
    probe(conn) {
        if (this.conn !== conn || conn.probing || now() - conn.lastHeard < this.opts.heartbeatMs)
            return;
        const chat = this.chats.keys().next().value;
        conn.probing = true;
        // A chat's next message (from the recent cache), or, tracking none, the notification settings.
        const after = chat === undefined ? 0 : this.chats.get(chat).position;
        const frame = chat === undefined ? { type: 'notification_settings' } : { type: 'sync', chat, after, limit: 1 };
        const answered = () => {
            conn.probing = false;
        };
        this.request(frame, { retryable: false, internal: true })
            .then((page) => {
            answered();
            if (chat !== undefined && this.chats.has(chat))
                this.ingestStored(chat, page.items, 'sync', after);
        })
            .catch((e) => {
            answered();
            if (e.code !== 'timeout' || this.conn !== conn)
                return; // any answer (an error too) shows the node is there
            this.log('warn', 'the node did not answer a heartbeat: reconnecting', { url: conn.url });
            try {
                conn.ws.close(4000, 'heartbeat timeout');
            }
            catch {
                /* ignore */
            }
            this.onClose(conn, 1006, 'heartbeat timeout');
        });
    }
    sendHello(resume) {
        for (let i = 0; i < resume.length; i += 1000) {
            const part = resume.slice(i, i + 1000);
            const id = `h${++this.helloSeq}`;
            this.hellos.set(id, { remaining: new Set(part.map((r) => r.chat)) });
            this.write({ type: 'hello', id, resume: part });
        }
    }
    onMessages(frame) {
        const hid = typeof frame.id === 'string' && frame.id.startsWith('h') ? frame.id : undefined;
        if (!hid)
            return this.onAnswer(frame);
        // A catch-up frame: stored messages, in order, whatever the hello's state.
        this.ingestStored(frame.chat, frame.items, 'resume');
        const hello = this.hellos.get(hid);
        // A node older than `done` sends none: each frame is taken as the chat's last (a
        // `has_more` then pages on with sync; frames still coming are kept, duplicates dropped).
        const done = frame.done ?? true;
        if (!hello || !done || !hello.remaining.delete(frame.chat))
            return;
        if (hello.remaining.size === 0)
            this.hellos.delete(hid);
        // The chat's catch-up ended; `has_more`: it stopped at the node's resume_max_messages.
        const st = this.chats.get(frame.chat);
        if (frame.has_more)
            this.fill(frame.chat);
        else if (st)
            this.watchGap(frame.chat, st); // a gap left now is one to fill
        this.checkCaughtUp();
    }
    onError(frame) {
        const err = new WeftError(frame.code, frame.message, {
            ...(frame.retry_after_ms !== undefined ? { retryAfterMs: frame.retry_after_ms } : {}),
            ...(frame.id !== undefined ? { requestId: frame.id } : {}),
            ...(frame.chat !== undefined ? { chat: frame.chat } : {}),
            detail: frame,
        });
        if (frame.code === 'rate_limited')
            this.hold(frame.retry_after_ms ?? 1_000);
        if (typeof frame.id === 'string' && frame.id.startsWith('h')) {
            const hello = this.hellos.get(frame.id);
            if (hello) {
                if (typeof frame.chat === 'number') {
                    // That chat's catch-up failed; the others go on.
                    if (hello.remaining.delete(frame.chat))
                        this.onChatFailure(frame.chat, err);
                }
                else {
                    // The whole hello was refused (rate limited, say): its chats catch up with sync.
                    for (const chat of hello.remaining)
                        this.retryChat(chat, err);
                    hello.remaining.clear();
                }
                if (hello.remaining.size === 0)
                    this.hellos.delete(frame.id);
                this.checkCaughtUp();
                return;
            }
        }
        if (typeof frame.id === 'number') {
            const send = this.sendsById.get(frame.id);
            if (send)
                return this.onSendError(send, err);
            const p = this.pending.get(frame.id);
            if (p)
                return this.onRequestError(p, err);
        }
        this.emit('error', err);
    }
    /** A catch-up or fill of `chat` failed. */
    onChatFailure(chat, err) {
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
    retryChat(chat, err) {
        const st = this.chats.get(chat);
        if (!st)
            return;
        if (st.gapTimer)
            clearTimeout(st.gapTimer);
        st.gapTimer = setTimeout(() => {
            st.gapTimer = undefined;
            this.fill(chat);
        }, Math.max(err.retryAfterMs ?? 0, this.opts.gapWaitMs));
    }
    onAnswer(frame) {
        if (typeof frame.id !== 'number')
            return;
        const send = this.sendsById.get(frame.id);
        if (send && frame.type === 'ack')
            return this.onSendAck(send, frame);
        const p = this.pending.get(frame.id);
        if (!p)
            return;
        this.pending.delete(p.id);
        if (p.timer)
            clearTimeout(p.timer);
        p.resolve(frame);
    }
    onRequestError(p, err) {
        this.pending.delete(p.id);
        if (p.timer)
            clearTimeout(p.timer);
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
    chatState(chat, startAt) {
        let st = this.chats.get(chat);
        if (!st) {
            st = { position: startAt, buffer: new Map(), skipped: new Set(), gapTimer: undefined, filling: false, refill: false };
            this.chats.set(chat, st);
        }
        return st;
    }
    /** One message from a live frame or an ack: delivered in order, once. */
    ingest(chat, m, source) {
        let st = this.chats.get(chat);
        if (!st) {
            const start = this.opts.untrackedChats === 'beginning' ? 0 : m.seq - 1;
            st = this.chatState(chat, start);
        }
        this.place(st, m, source);
        this.drain(chat, st);
        this.watchGap(chat, st);
    }
    place(st, m, source) {
        if (m.seq <= st.position) {
            if (st.skipped.delete(m.seq))
                this.deliver(m, { source, late: true });
            return;
        }
        const held = st.buffer.get(m.seq);
        if (held !== undefined && held !== ABSENT)
            return;
        if (m.seq === st.position + 1 && held === undefined) {
            st.position = m.seq;
            this.deliver(m, { source, late: false });
            return;
        }
        m._source = source;
        st.buffer.set(m.seq, m);
    }
    deliver(m, info) {
        const clean = { ...m };
        delete clean._source;
        this.emit('message', clean, info);
    }
    /** Delivers what the buffer holds right after the position. */
    drain(_chat, st) {
        for (;;) {
            const next = st.buffer.get(st.position + 1);
            if (next === undefined)
                break;
            st.buffer.delete(st.position + 1);
            st.position++;
            if (next === ABSENT) {
                st.skipped.add(st.position);
                if (st.skipped.size > 1000)
                    st.skipped.delete(st.skipped.values().next().value);
            }
            else {
                const source = (next._source ?? 'live');
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
    ingestStored(chat, items, source, after, heldBefore) {
        const st = this.chatState(chat, after ?? 0);
        const sorted = [...items].sort((a, b) => a.seq - b.seq);
        let prev = after;
        for (const m of sorted) {
            if (prev !== undefined)
                this.markAbsent(st, prev + 1, m.seq - 1);
            this.place(st, m, source);
            prev = m.seq;
        }
        if (heldBefore !== undefined && prev !== undefined && heldBefore > prev)
            this.markAbsent(st, prev + 1, heldBefore - 1);
        this.drain(chat, st);
        this.watchGap(chat, st);
    }
    /** The newest message number held back in `st` (0 when none). */
    newestHeld(st) {
        let top = 0;
        for (const [n, m] of st.buffer)
            if (m !== ABSENT && n > top)
                top = n;
        return top;
    }
    markAbsent(st, from, to) {
        const lo = Math.max(from, st.position + 1);
        if (to - lo > 100_000) {
            // A huge hole: jump over it instead of marking each number.
            st.position = Math.max(st.position, to - 100_000);
        }
        for (let n = Math.max(lo, st.position + 1); n <= to; n++)
            if (!st.buffer.has(n))
                st.buffer.set(n, ABSENT);
    }
    gapOpen(st) {
        return st.buffer.size > 0 && !st.buffer.has(st.position + 1);
    }
    watchGap(chat, st) {
        if (!this.gapOpen(st)) {
            if (st.gapTimer)
                clearTimeout(st.gapTimer);
            st.gapTimer = undefined;
            this.checkCaughtUp();
            return;
        }
        // A chat still catching up: its catch-up closes the gap, or its end looks again.
        if (st.gapTimer || st.filling || this.catchingUp(chat))
            return;
        st.gapTimer = setTimeout(() => {
            st.gapTimer = undefined;
            if (this.chats.get(chat) === st && this.gapOpen(st)) {
                const before = Math.min(...[...st.buffer.keys()].filter((n) => st.buffer.get(n) !== ABSENT));
                this.emit('gap', { chat, after: st.position, before });
                this.fill(chat);
            }
            else {
                this.checkCaughtUp();
            }
        }, this.opts.gapWaitMs);
    }
    /** Whether a `hello` catch-up of `chat` has not ended yet. */
    catchingUp(chat) {
        for (const h of this.hellos.values())
            if (h.remaining.has(chat))
                return true;
        return false;
    }
    /** The server lost live frames of a chat: fill it now, without waiting for a gap to show. */
    onResync(frame) {
        const st = this.chats.get(frame.chat);
        // A chat still catching up gets everything from its catch-up.
        if (!st || this.catchingUp(frame.chat))
            return;
        if (st.gapTimer)
            clearTimeout(st.gapTimer);
        st.gapTimer = undefined;
        if (st.filling)
            st.refill = true; // the fill under way may have read before the lost frames' messages
        else
            this.fill(frame.chat);
    }
    /** Pages a chat forward with `sync` from its position until the store has no more. */
    fill(chat) {
        const st = this.chats.get(chat);
        if (!st || st.filling || !this.conn?.welcomed)
            return;
        st.filling = true;
        const after = st.position;
        const held = this.newestHeld(st);
        const frame = { type: 'sync', chat, after, limit: this.opts.syncLimit };
        this.request(frame, { retryable: false, internal: true })
            .then((page) => {
            if (this.chats.get(chat) !== st)
                return;
            st.filling = false;
            this.ingestStored(chat, page.items, 'sync', after, page.has_more ? undefined : held);
            const again = page.has_more || st.refill;
            st.refill = false;
            if (again)
                this.fill(chat);
            else
                this.watchGap(chat, st);
            this.checkCaughtUp();
        })
            .catch((e) => {
            if (this.chats.get(chat) !== st)
                return;
            st.filling = false;
            if (e.code !== 'disconnected' && e.code !== 'closed')
                this.onChatFailure(chat, e);
        });
    }
    checkCaughtUp() {
        const conn = this.conn;
        if (!conn?.welcomed || conn.caughtUp)
            return;
        if (this.hellos.size > 0)
            return;
        // A gap timer with no gap open is a catch-up to retry: not caught up yet.
        for (const st of this.chats.values())
            if (st.filling || st.gapTimer || this.gapOpen(st))
                return;
        conn.caughtUp = true;
        this.emit('caught_up', { chats: [...this.chats.keys()] });
    }
    /**
     * Tracks `chat` from `after` (default 0: its whole history): its messages come
     * through `message`, in order, once. When connected, it is resumed at once.
     */
    track(chat, after = 0) {
        const st = this.chats.get(chat);
        if (st) {
            if (after > st.position) {
                for (const n of [...st.buffer.keys()])
                    if (n <= after)
                        st.buffer.delete(n);
                st.position = after;
                this.drain(chat, st);
            }
            return;
        }
        this.chatState(chat, after);
        if (this.conn?.welcomed) {
            if (this.conn.caughtUp)
                this.conn.caughtUp = false;
            this.sendHello([{ chat, after }]);
        }
    }
    /** Stops tracking `chat` (its live messages start it again, as an untracked chat would). */
    untrack(chat) {
        const st = this.chats.get(chat);
        if (!st)
            return;
        if (st.gapTimer)
            clearTimeout(st.gapTimer);
        this.chats.delete(chat);
    }
    // ------------------------------------------------------------ outgoing frames
    write(frame) {
        const conn = this.conn;
        if (!conn?.welcomed)
            return false;
        try {
            conn.ws.send(JSON.stringify(frame));
            return true;
        }
        catch (e) {
            this.log('warn', 'write failed', e);
            return false;
        }
    }
    checkSize(frame) {
        const size = utf8Length(JSON.stringify(frame));
        if (size > this.opts.maxFrameBytes) {
            return new WeftError('frame_too_large', `the frame is ${size} bytes, over ${this.opts.maxFrameBytes}`);
        }
        return undefined;
    }
    hold(ms) {
        this.holdUntil = Math.max(this.holdUntil, now() + ms);
        if (this.holdTimer)
            clearTimeout(this.holdTimer);
        this.holdTimer = setTimeout(() => {
            this.holdTimer = undefined;
            this.flush();
        }, Math.max(0, this.holdUntil - now()));
    }
    /** Writes queued requests and sends, as far as the connection and the rate limits allow. */
    flush() {
        if (!this.conn?.welcomed)
            return;
        if (now() < this.holdUntil) {
            if (!this.holdTimer)
                this.hold(0);
            return;
        }
        while (this.queue.length > 0) {
            const p = this.queue.shift();
            if (!this.writeRequest(p))
                return; // the socket refused it: the close follows
        }
        this.pumpSends();
    }
    writeRequest(p) {
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
            if (this.pending.get(p.id) !== p)
                return;
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
    request(frame, opts = {}) {
        if (this._state === 'closed')
            return Promise.reject(new WeftError('closed', 'the client was closed'));
        const tooLarge = this.checkSize(frame);
        if (tooLarge)
            return Promise.reject(tooLarge);
        return new Promise((resolve, reject) => {
            const p = {
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
            }
            else if (opts.internal && !this.conn?.welcomed) {
                reject(new WeftError('disconnected', 'not connected'));
            }
            else {
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
    send(params) {
        if (this._state === 'closed')
            return Promise.reject(new WeftError('closed', 'the client was closed'));
        const clientMsgId = params.client_msg_id ?? randomId();
        const frame = { type: 'send', body: params.body, client_msg_id: clientMsgId };
        if (params.chat !== undefined)
            frame.chat = params.chat;
        if (params.recipients !== undefined)
            frame.recipients = params.recipients;
        if (params.reply_to !== undefined)
            frame.reply_to = params.reply_to;
        if (params.attachments !== undefined)
            frame.attachments = params.attachments;
        const tooLarge = this.checkSize({ ...frame, id: 2 ** 31 });
        if (tooLarge)
            return Promise.reject(tooLarge);
        return new Promise((resolve, reject) => {
            const entry = {
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
    removeSend(entry) {
        const i = this.sends.indexOf(entry);
        if (i >= 0)
            this.sends.splice(i, 1);
        if (entry.reqId)
            this.sendsById.delete(entry.reqId);
        if (entry.attemptTimer)
            clearTimeout(entry.attemptTimer);
        if (entry.deadline)
            clearTimeout(entry.deadline);
    }
    pumpSends() {
        if (!this.conn?.welcomed)
            return;
        if (now() < this.holdUntil) {
            if (!this.holdTimer)
                this.hold(0);
            return;
        }
        const window = now() < this.cautiousUntil ? 1 : this.opts.maxInflightSends;
        let inflight = 0;
        for (const s of this.sends)
            if (s.state === 'inflight')
                inflight++;
        let wake = Infinity;
        for (const s of this.sends) {
            if (inflight >= window)
                break;
            if (s.state !== 'queued')
                continue;
            if (s.notBefore > now()) {
                wake = Math.min(wake, s.notBefore);
                continue;
            }
            s.reqId = this.nextId++;
            s.attempts++;
            if (!this.write({ ...s.frame, id: s.reqId }))
                return;
            s.state = 'inflight';
            this.sendsById.set(s.reqId, s);
            inflight++;
            s.attemptTimer = setTimeout(() => {
                // No answer on this connection: ask again with the same client_msg_id.
                if (s.state !== 'inflight' || this.sendsById.get(s.reqId) !== s)
                    return;
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
    onSendAck(s, ack) {
        this.removeSend(s);
        const result = { chat: ack.chat, seq: ack.seq ?? 0, client_msg_id: s.clientMsgId };
        if (this.opts.echoOwnMessages && ack.seq !== undefined)
            this.echo(s, ack);
        s.resolve(result);
        this.pumpSends();
    }
    /** The app's own message, which the server does not send back to this session. */
    echo(s, ack) {
        const seq = ack.seq;
        const st = this.chats.get(ack.chat);
        if (st && seq <= st.position && !st.skipped.has(seq))
            return;
        if (Array.isArray(s.frame.attachments) && s.frame.attachments.length > 0) {
            // Its files' names and URLs are only known to the server: read it back.
            if (!st)
                this.chatState(ack.chat, seq - 1);
            this.request({ type: 'sync', chat: ack.chat, after: seq - 1, limit: 1 }, { internal: true })
                .then((page) => this.ingestStored(ack.chat, page.items, 'sync', seq - 1))
                .catch(() => this.watchGap(ack.chat, this.chatState(ack.chat, seq - 1)));
            return;
        }
        const body = String(s.frame.body);
        const m = {
            chat: ack.chat,
            seq,
            sender: this.welcome?.user ?? null,
            body,
            sent_at: new Date().toISOString(),
            client_msg_id: s.clientMsgId,
            reply_to: s.frame.reply_to ?? null,
        };
        const mentions = mentionsOf(body);
        if (mentions.length > 0)
            m.mentions = mentions;
        this.ingest(ack.chat, m, 'own');
    }
    onSendError(s, err) {
        this.sendsById.delete(s.reqId);
        if (s.attemptTimer)
            clearTimeout(s.attemptTimer);
        s.attemptTimer = undefined;
        if (SEND_RETRY_CODES.has(err.code)) {
            s.state = 'queued';
            if (err.code === 'rate_limited') {
                // The user's bucket: every send waits, then one at a time for a while.
                this.cautiousUntil = now() + 10_000;
                this.hold(err.retryAfterMs ?? 1_000);
            }
            else {
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
    async sync(chat, after, limit = 100) {
        const held = this.newestHeld(this.chatState(chat, after));
        const page = await this.request({ type: 'sync', chat, after, limit });
        if (this.chats.has(chat))
            this.ingestStored(chat, page.items, 'sync', after, page.has_more ? undefined : held);
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
    async history(chat, options = {}) {
        const limit = options.limit ?? 50;
        const from = options.before === undefined ? { latest: true } : { before: options.before };
        const page = await this.request({ type: 'sync', chat, ...from, limit });
        const oldest = page.items[0];
        if (oldest && this.chats.has(chat))
            this.ingestStored(chat, page.items, 'sync', oldest.seq - 1);
        return page;
    }
    /** Says the user is typing (at most once per `typingIntervalMs` per chat; dropped while disconnected). */
    typing(chat) {
        const last = this.lastTyping.get(chat) ?? 0;
        if (now() - last < this.opts.typingIntervalMs || !this.conn?.welcomed || now() < this.holdUntil)
            return;
        this.lastTyping.set(chat, now());
        this.write({ type: 'typing', chat });
    }
    /** Messages up to `seq` reached this device. */
    async delivered(chat, seq) {
        await this.request({ type: 'delivered', chat, seq });
    }
    /** Messages up to `seq` were read (moves `delivered` too). */
    async read(chat, seq) {
        await this.request({ type: 'read', chat, seq });
    }
    /** Edits one of the user's own messages. */
    async edit(chat, seq, body) {
        await this.request({ type: 'edit', chat, seq, body }, { retryable: false });
    }
    /** Deletes a message (own, or anyone's as admin or owner). */
    async deleteMessage(chat, seq) {
        await this.request({ type: 'delete', chat, seq }, { retryable: false });
    }
    /** Reacts to a message (idempotent). */
    async react(chat, seq, emoji) {
        await this.request({ type: 'react', chat, seq, emoji });
    }
    /** Takes a reaction back (idempotent). */
    async unreact(chat, seq, emoji) {
        await this.request({ type: 'unreact', chat, seq, emoji });
    }
    /** Adds users to a group as members (admin or owner). */
    async addMembers(chat, users) {
        await this.request({ type: 'add_members', chat, users });
    }
    /** Removes a member from a group (admin or owner). */
    async removeMember(chat, user) {
        await this.request({ type: 'remove_member', chat, user }, { retryable: false });
    }
    /** Sets a member's role (owner). */
    async setRole(chat, user, role) {
        await this.request({ type: 'set_role', chat, user, role });
    }
    /** Changes a chat's name, description or metadata. */
    async updateChat(chat, change) {
        await this.request({ type: 'update_chat', chat, ...change });
    }
    /** Leaves a group; the last owner names a `successor`. */
    async leave(chat, successor) {
        const frame = { type: 'leave', chat };
        if (successor !== undefined)
            frame.successor = successor;
        await this.request(frame, { retryable: false });
        this.untrack(chat);
    }
    /** Searches the user's chats (the REST query language). */
    search(query, params = {}) {
        return this.request({ type: 'search', query, ...params });
    }
    /** Asks for an upload URL for a file to send in `chat`. */
    async upload(chat, params) {
        const f = await this.request({ type: 'upload', chat, ...params }, { retryable: false });
        return f.attachment;
    }
    /**
     * Uploads a file in one call: `upload`, then PUT of the bytes to the granted
     * URL (relative URLs resolve against the node). Resolves with the attachment
     * id to give `send`'s `attachments`.
     */
    async uploadFile(chat, data, meta) {
        const size = data instanceof Blob ? data.size : data.byteLength;
        const grant = await this.upload(chat, { ...meta, size });
        const url = new URL(grant.upload_url, httpBase(this.conn?.url ?? this.url) + '/').toString();
        if (!this.fetchFn)
            throw new WeftError('invalid_options', 'no fetch available');
        const res = await this.fetchFn(url, {
            method: 'PUT',
            headers: { 'content-type': meta.content_type },
            body: data,
        });
        if (!res.ok)
            throw await httpError(res);
        return grant.id;
    }
    /** Registers this device for push notifications while the user is away. */
    registerDevice(device_id, provider, token) {
        return this.request({ type: 'register_device', device_id, provider, token });
    }
    /** Forgets a device. */
    unregisterDevice(device_id) {
        return this.request({ type: 'unregister_device', device_id }, { retryable: false });
    }
    /** Reads (no argument) or changes the user's notification settings; resolves with them as they are now. */
    async notificationSettings(change = {}) {
        const f = await this.request({ type: 'notification_settings', ...change });
        const { type: _t, id: _i, ...settings } = f;
        return settings;
    }
}
function stripType(frame) {
    const { type: _t, ...m } = frame;
    return m;
}
async function httpError(res) {
    let body;
    const text = await res.text().catch(() => '');
    try {
        body = text ? JSON.parse(text) : undefined;
    }
    catch {
        body = text;
    }
    const code = body?.error?.code ?? (res.status === 431 ? 'headers_too_large' : `http_${res.status}`);
    const message = body?.error?.message ?? `HTTP ${res.status}`;
    const retry = res.headers.get('retry-after');
    const retryAfterMs = retry && /^\d+$/.test(retry) ? Number(retry) * 1000 : undefined;
    return new WeftHttpError(res.status, code, message, body, retryAfterMs);
}
const enc = encodeURIComponent;
function query(params) {
    if (!params)
        return '';
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params))
        if (v !== undefined && v !== null)
            q.set(k, String(v));
    const s = q.toString();
    return s ? `?${s}` : '';
}
/**
 * The REST API for an application's backend (the app token is its secret:
 * never ship it to browsers). Every method resolves with the parsed answer or
 * rejects with a `WeftHttpError` carrying `status` and the stable `code`.
 */
export class WeftRest {
    baseUrl;
    appToken;
    adminKey;
    fetchFn;
    timeoutMs;
    constructor(options) {
        this.baseUrl = options.baseUrl.replace(/\/+$/, '');
        this.appToken = options.appToken;
        this.adminKey = options.adminKey;
        const f = options.fetch ?? globalThis.fetch;
        if (!f)
            throw new WeftError('invalid_options', 'no fetch available');
        this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
        this.timeoutMs = options.timeoutMs ?? 30_000;
    }
    /** A copy bound to another application. */
    forApp(appToken) {
        const o = { baseUrl: this.baseUrl, appToken, fetch: this.fetchFn, timeoutMs: this.timeoutMs };
        if (this.adminKey !== undefined)
            o.adminKey = this.adminKey;
        return new WeftRest(o);
    }
    /** Any call: `path` under the base URL (e.g. `/api/v1/…`). */
    async call(method, path, body, headers = {}) {
        const h = { accept: 'application/json', ...headers };
        if (body !== undefined)
            h['content-type'] = 'application/json';
        if (this.adminKey && !h.authorization)
            h.authorization = `Bearer ${this.adminKey}`;
        const ctl = typeof AbortController !== 'undefined' ? new AbortController() : undefined;
        const timer = ctl ? setTimeout(() => ctl.abort(), this.timeoutMs) : undefined;
        let res;
        try {
            const init = { method, headers: h };
            if (body !== undefined)
                init.body = JSON.stringify(body);
            if (ctl)
                init.signal = ctl.signal;
            res = await this.fetchFn(this.baseUrl + path, init);
        }
        catch (e) {
            if (timer)
                clearTimeout(timer);
            if (ctl?.signal.aborted)
                throw new WeftError('timeout', `${method} ${path}: no answer within ${this.timeoutMs} ms`);
            throw new WeftError('network', `${method} ${path}: ${e?.message ?? e}`, { cause: e });
        }
        try {
            if (!res.ok)
                throw await httpError(res);
            if (res.status === 204)
                return undefined;
            const text = await res.text();
            if (!text)
                return undefined;
            try {
                return JSON.parse(text);
            }
            catch {
                throw new WeftError('bad_response', `${method} ${path}: the answer is not JSON`, { status: res.status, detail: text });
            }
        }
        finally {
            if (timer)
                clearTimeout(timer);
        }
    }
    app(path = '') {
        if (!this.appToken)
            throw new WeftError('invalid_options', 'this call needs `appToken`');
        return `/api/v1/applications/${enc(this.appToken)}${path}`;
    }
    chat(chat, path = '') {
        return this.app(`/chats/${chat}${path}`);
    }
    msg(chat, n, path = '') {
        return this.chat(chat, `/messages/${n}${path}`);
    }
    // applications
    /** `POST /applications`; the answer carries `token` and `secret` (shown once). Sets `appToken` when unset. */
    async createApplication(p) {
        const app = await this.call('POST', '/api/v1/applications', p);
        if (!this.appToken)
            this.appToken = app.token;
        return app;
    }
    getApplication() {
        return this.call('GET', this.app());
    }
    updateApplication(p) {
        return this.call('PATCH', this.app(), p);
    }
    /** A new signing secret: tokens signed with the old one stop working (sessions close with 4001). */
    rotateSecret() {
        return this.call('POST', this.app('/secret'));
    }
    /** A user token (HS256 JWT), 1 h by default, 30 days at most. */
    createUserToken(user, p = {}) {
        return this.call('POST', this.app(`/users/${enc(user)}/tokens`), p);
    }
    // chats
    createChat(p = {}) {
        return this.call('POST', this.app('/chats'), p);
    }
    listChats(p = {}) {
        return this.call('GET', this.app('/chats') + query(p));
    }
    getChat(chat) {
        return this.call('GET', this.chat(chat));
    }
    updateChat(chat, change) {
        return this.call('PATCH', this.chat(chat), change);
    }
    userChats(user, p = {}) {
        return this.call('GET', this.app(`/users/${enc(user)}/chats`) + query(p));
    }
    // members
    listMembers(chat) {
        return this.call('GET', this.chat(chat, '/members'));
    }
    /** Adds a member (as `role`, default member) or changes a member's role. */
    putMember(chat, user, p = {}) {
        return this.call('PUT', this.chat(chat, `/members/${enc(user)}`), p);
    }
    removeMember(chat, user) {
        return this.call('DELETE', this.chat(chat, `/members/${enc(user)}`));
    }
    readState(chat) {
        return this.call('GET', this.chat(chat, '/read_state'));
    }
    presence(user) {
        return this.call('GET', this.app(`/users/${enc(user)}/presence`));
    }
    // messages
    /** Posts a message (as `sender`, or as the backend); `idempotencyKey` makes retries safe. */
    postMessage(chat, p, opts = {}) {
        const headers = {};
        if (opts.idempotencyKey)
            headers['idempotency-key'] = opts.idempotencyKey;
        return this.call('POST', this.chat(chat, '/messages'), p, headers);
    }
    /** Newest first; `before`/`after` bound the numbers. */
    listMessages(chat, p = {}) {
        return this.call('GET', this.chat(chat, '/messages') + query(p));
    }
    getMessage(chat, n, p = {}) {
        return this.call('GET', this.msg(chat, n) + query(p));
    }
    editMessage(chat, n, body) {
        return this.call('PATCH', this.msg(chat, n), { body });
    }
    deleteMessage(chat, n) {
        return this.call('DELETE', this.msg(chat, n));
    }
    replies(chat, n, p = {}) {
        return this.call('GET', this.msg(chat, n, '/replies') + query(p));
    }
    versions(chat, n) {
        return this.call('GET', this.msg(chat, n, '/versions'));
    }
    reactions(chat, n) {
        return this.call('GET', this.msg(chat, n, '/reactions'));
    }
    react(chat, n, emoji, user) {
        return this.call('PUT', this.msg(chat, n, `/reactions/${enc(emoji)}/${enc(user)}`));
    }
    unreact(chat, n, emoji, user) {
        return this.call('DELETE', this.msg(chat, n, `/reactions/${enc(emoji)}/${enc(user)}`));
    }
    searchChat(chat, q, p = {}) {
        return this.call('GET', this.chat(chat, '/messages/search') + query({ query: q, ...p }));
    }
    searchUser(user, q, p = {}) {
        return this.call('GET', this.app(`/users/${enc(user)}/messages/search`) + query({ query: q, ...p }));
    }
    // attachments
    createAttachment(chat, p) {
        return this.call('POST', this.chat(chat, '/attachments'), p);
    }
    /** PUTs the bytes to an upload URL (relative URLs resolve against the base URL). */
    async uploadBytes(uploadUrl, data, contentType) {
        const res = await this.fetchFn(new URL(uploadUrl, this.baseUrl + '/').toString(), {
            method: 'PUT',
            headers: { 'content-type': contentType },
            body: data,
        });
        if (!res.ok)
            throw await httpError(res);
        await res.body?.cancel().catch(() => { });
    }
    // webhooks
    createWebhook(p) {
        return this.call('POST', this.app('/webhooks'), p);
    }
    async listWebhooks() {
        return (await this.call('GET', this.app('/webhooks'))).webhooks;
    }
    getWebhook(id) {
        return this.call('GET', this.app(`/webhooks/${enc(id)}`));
    }
    updateWebhook(id, p) {
        return this.call('PATCH', this.app(`/webhooks/${enc(id)}`), p);
    }
    rotateWebhook(id) {
        return this.call('POST', this.app(`/webhooks/${enc(id)}/rotate`));
    }
    deleteWebhook(id) {
        return this.call('DELETE', this.app(`/webhooks/${enc(id)}`));
    }
    replayWebhook(id, p) {
        return this.call('POST', this.app(`/webhooks/${enc(id)}/replay`), p);
    }
    webhookDeliveries(id) {
        return this.call('GET', this.app(`/webhooks/${enc(id)}/deliveries`));
    }
    // devices and notification settings
    putDevice(user, deviceId, p) {
        return this.call('PUT', this.app(`/users/${enc(user)}/devices/${enc(deviceId)}`), p);
    }
    async listDevices(user) {
        return (await this.call('GET', this.app(`/users/${enc(user)}/devices`))).devices;
    }
    deleteDevice(user, deviceId) {
        return this.call('DELETE', this.app(`/users/${enc(user)}/devices/${enc(deviceId)}`));
    }
    getNotificationSettings(user) {
        return this.call('GET', this.app(`/users/${enc(user)}/notification_settings`));
    }
    updateNotificationSettings(user, change) {
        return this.call('PATCH', this.app(`/users/${enc(user)}/notification_settings`), change);
    }
    // the node
    /** `GET /api/v1/me` with a user token: who it names. */
    me(userToken) {
        return this.call('GET', '/api/v1/me', undefined, { authorization: `Bearer ${userToken}` });
    }
    /** The cluster's live members (admin key). */
    cluster() {
        return this.call('GET', '/api/v1/cluster');
    }
    /** `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the node's REST API. */
    openapi() {
        return this.call('GET', '/api/v1/openapi.json');
    }
    /** True when `/readyz` answers 200. */
    async ready() {
        try {
            const res = await this.fetchFn(this.baseUrl + '/readyz');
            await res.body?.cancel().catch(() => { });
            return res.ok;
        }
        catch {
            return false;
        }
    }
}
/** The same class, by the name backends look for. */
export { WeftRest as WeftAdmin };
