import type { AckFrame, Application, ChatInfoChange, Chat, ChatUpdatedFrame, CreatedApplication, Device, DeviceRegisteredFrame, DeviceUnregisteredFrame, HistoryOptions, Member, MemberJoinedFrame, MemberLeftFrame, Message, MessageDeletedFrame, MessageEditedFrame, MessageListParams, MessagesFrame, MessageVersion, NotificationSettings, NotificationSettingsChange, NotificationSettingsFrame, Presence, PresenceFrame, ResyncFrame, PushProvider, ReactionFrame, ReadState, ReceiptFrame, RequestId, RestMessage, RestSearchHit, Role, RefreshedFrame, RoleChangedFrame, SearchParams, SearchResultsFrame, SendAck, SendParams, ServerFrame, ThreadUpdatedFrame, TokenExpiringFrame, TypingFrame, UploadGrant, UploadParams, UploadReadyFrame, UserToken, Webhook, WebhookDelivery, WelcomeFrame, ListParams } from './types.js';
export type * from './types.js';
/** The package version. */
export declare const VERSION = "0.1.0";
/**
 * Every failure the client reports. `code` is stable: the server's code
 * (docs/protocol.md "Error codes", README "Errors") or one of the client's own:
 * `timeout`, `disconnected`, `closed`, `network`, `frame_too_large` (refused
 * before sending), `token_unavailable` (getToken failed), `bad_response`.
 */
export declare class WeftError extends Error {
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
    constructor(code: string, message: string, extra?: {
        status?: number;
        retryAfterMs?: number;
        requestId?: RequestId;
        chat?: number;
        detail?: unknown;
        cause?: unknown;
    });
    /** Whether retrying the same request later can succeed. */
    get retryable(): boolean;
}
/** A REST call answered with an error status. */
export declare class WeftHttpError extends WeftError {
    constructor(status: number, code: string, message: string, detail: unknown, retryAfterMs?: number);
}
/** A tiny typed event emitter that works the same in browsers and Node. */
declare class Emitter<Events extends Record<string, unknown>> {
    private listeners;
    /** Calls `fn` for every `event`; returns a function that removes it. */
    on<K extends keyof Events>(event: K, fn: (payload: Events[K], info: EventInfo<K>) => void): () => void;
    /** Calls `fn` for the next `event` only. */
    once<K extends keyof Events>(event: K, fn: (payload: Events[K], info: EventInfo<K>) => void): () => void;
    off<K extends keyof Events>(event: K, fn: (payload: Events[K], info: EventInfo<K>) => void): void;
    /** Resolves with the next `event` for which `filter` holds (rejects after `timeoutMs`, if given). */
    waitFor<K extends keyof Events>(event: K, filter?: (payload: Events[K]) => boolean, timeoutMs?: number): Promise<Events[K]>;
    protected emit<K extends keyof Events>(event: K, payload: Events[K], info?: unknown): void;
}
type EventInfo<K> = K extends 'message' ? MessageInfo : undefined;
/** The users a body mentions, by the server's rule (src/model.rs `mentions`). */
export declare function mentionsOf(body: string): string[];
/** `http://host:8080` or `ws://host:8080/ws` → the WebSocket URL. */
export declare function wsUrl(url: string): string;
/** What a WebSocket constructor must offer (the browser's, Node's, or the `ws` package's). */
export interface WebSocketLike {
    readonly readyState: number;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((ev: any) => void) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => void) | null;
    onerror: ((ev: any) => void) | null;
    onmessage: ((ev: {
        data: any;
    }) => void) | null;
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
    frame: ServerFrame | {
        type: string;
        [k: string]: unknown;
    };
    state: ClientState;
    connecting: {
        url: string;
        attempt: number;
    };
    connected: ConnectedEvent;
    disconnected: DisconnectedEvent;
    /** Every resumed chat is caught up and no gap is open (once per connection). */
    caught_up: {
        chats: number[];
    };
    closed: ClosedEvent;
    token_refreshed: {
        reason: TokenRequest['reason'];
    };
    /** A gap in a chat's numbers is being filled. */
    gap: GapEvent;
}
/**
 * A user's WebSocket session with weft that survives reconnects: it resumes
 * chats with `hello`, fills gaps with `sync`, retries unacked sends with their
 * `client_msg_id`, backs off as the server says, and refreshes its token.
 */
export declare class WeftClient extends Emitter<WeftEvents> {
    private readonly urls;
    private urlIndex;
    private readonly opts;
    private readonly backoff;
    private readonly WS;
    private readonly fetchFn;
    private readonly getTokenFn;
    private readonly log;
    private token;
    private tokenBad;
    private _state;
    private conn;
    private attempt;
    /** Reconnects made at once in the current window of `stableAfterMs` (a few, then back off). */
    private quickRetries;
    private quickWindowStart;
    private reconnectTimer;
    /** A connection attempt is getting its token. */
    private opening;
    private stopped;
    private welcome;
    private connectWaiters;
    private nextId;
    private helloSeq;
    private pending;
    private queue;
    private sends;
    private sendsById;
    private holdUntil;
    private holdTimer;
    private sendWakeTimer;
    /** Until then, one send at a time: the window that just hit the rate limit must not keep striking. */
    private cautiousUntil;
    private hellos;
    private chats;
    private lastTyping;
    constructor(options: WeftClientOptions);
    /** `idle`, `connecting`, `connected`, `reconnecting` or `closed`. */
    get state(): ClientState;
    /** The `welcome` of the current connection (user, session, node), if connected. */
    get session(): WelcomeFrame | undefined;
    /** The signed-in user, once welcomed. */
    get user(): string | undefined;
    /** The URL of the current (or last) connection. */
    get url(): string;
    /** The last contiguous `seq` delivered of `chat` (undefined when untracked). */
    position(chat: number): number | undefined;
    /** Every tracked chat's position: what to store to resume later (`positions`). */
    positions(): Record<number, number>;
    /** Sends not acked yet. */
    get pendingSends(): number;
    /**
     * Connects (and keeps reconnecting until `close()`); resolves with the first
     * welcome. Rejects only when the client stops for good (a 4000–4099 close,
     * 1007, no token).
     */
    connect(): Promise<ConnectedEvent>;
    /** Closes the connection for good: pending requests and sends reject with `closed`. */
    close(code?: number, reason?: string): void;
    /** Drops the current connection and reconnects at once (for tests and "retry now" buttons). */
    reconnect(): void;
    private setState;
    private currentToken;
    private open;
    private openNow;
    private backoffDelay;
    /** No wait for the first few "reconnect now" closes; then the backoff, so a node that keeps closing is not hammered. */
    private quickDelay;
    private scheduleReconnect;
    /** A refused handshake: ask the node over HTTP why (401: the token; 503: draining). */
    private probeHandshake;
    private onClose;
    /** Everything tied to the connection that just closed. */
    private dropConnectionState;
    private finish;
    private settleConnect;
    private onFrame;
    private onWelcome;
    /**
     * `token_expiring`: a new token from `getToken` (`expiring`) sent with `refresh`, so the
     * socket stays open. Any failure (no `getToken`, it threw or gave the same token, the node
     * refused it, the connection dropped) leaves things as they were: the node closes with 4001
     * at expiry and the client reconnects with a token it asks for then (`expired`).
     */
    private refreshInBand;
    /** Asks a quiet node something small; no answer in time: the connection is dead. */
    private probe;
    private sendHello;
    private onMessages;
    private onError;
    /** A catch-up or fill of `chat` failed. */
    private onChatFailure;
    /** Catches `chat` up with `sync` a little later (after `retry_after_ms`, at least `gapWaitMs`). */
    private retryChat;
    private onAnswer;
    private onRequestError;
    private chatState;
    /** One message from a live frame or an ack: delivered in order, once. */
    private ingest;
    private place;
    private deliver;
    /** Delivers what the buffer holds right after the position. */
    private drain;
    /**
     * Messages read from the store (catch-up, sync) after `after`: every number
     * in between that is not among them is not stored. `heldBefore` (for a read
     * that found nothing more): the newest number held when the read was asked
     * for; those were stored before the read, so every number up to it that the
     * read did not return is not stored either.
     */
    private ingestStored;
    /** The newest message number held back in `st` (0 when none). */
    private newestHeld;
    private markAbsent;
    private gapOpen;
    private watchGap;
    /** Whether a `hello` catch-up of `chat` has not ended yet. */
    private catchingUp;
    /** The server lost live frames of a chat: fill it now, without waiting for a gap to show. */
    private onResync;
    /** Pages a chat forward with `sync` from its position until the store has no more. */
    private fill;
    private checkCaughtUp;
    /**
     * Tracks `chat` from `after` (default 0: its whole history): its messages come
     * through `message`, in order, once. When connected, it is resumed at once.
     */
    track(chat: number, after?: number): void;
    /** Stops tracking `chat` (its live messages start it again, as an untracked chat would). */
    untrack(chat: number): void;
    private write;
    private checkSize;
    private hold;
    /** Writes queued requests and sends, as far as the connection and the rate limits allow. */
    private flush;
    private writeRequest;
    /**
     * Sends `frame` (a client frame without `id`) and resolves with its answer
     * (rejects with a `WeftError` for an `error` answer). The generic way to use
     * frames this version does not wrap.
     */
    request<T = ServerFrame>(frame: Record<string, unknown>, opts?: {
        retryable?: boolean;
        internal?: boolean;
    }): Promise<T>;
    /**
     * Sends a message; resolves with its ack once persisted. Retried with the
     * same `client_msg_id` across reconnects and rate limits until acked (or
     * `sendTimeoutMs`), so it is stored once. Rejects with a `WeftError` for a
     * refusal (`not_a_member`, `invalid_field`, …) or `close()`.
     */
    send(params: SendParams): Promise<SendAck>;
    private removeSend;
    private pumpSends;
    private onSendAck;
    /** The app's own message, which the server does not send back to this session. */
    private echo;
    private onSendError;
    /** History after `after` (up to `limit`, 1–500), read forward; newer messages than the chat's position also come through `message`. */
    sync(chat: number, after: number, limit?: number): Promise<MessagesFrame>;
    /**
     * History read backward: the newest `limit` messages (1–500, default 50) numbered
     * below `before`, or the chat's newest without it, oldest first; `has_more` says
     * older ones exist (page on with `before: page.items[0].seq`). The same messages as
     * the REST history (`WeftRest.listMessages(chat, {before, per_page})`). Items newer
     * than a tracked chat's position also come through `message`; an untracked chat
     * stays untracked.
     */
    history(chat: number, options?: HistoryOptions): Promise<MessagesFrame>;
    /** Says the user is typing (at most once per `typingIntervalMs` per chat; dropped while disconnected). */
    typing(chat: number): void;
    /** Messages up to `seq` reached this device. */
    delivered(chat: number, seq: number): Promise<void>;
    /** Messages up to `seq` were read (moves `delivered` too). */
    read(chat: number, seq: number): Promise<void>;
    /** Edits one of the user's own messages. */
    edit(chat: number, seq: number, body: string): Promise<void>;
    /** Deletes a message (own, or anyone's as admin or owner). */
    deleteMessage(chat: number, seq: number): Promise<void>;
    /** Reacts to a message (idempotent). */
    react(chat: number, seq: number, emoji: string): Promise<void>;
    /** Takes a reaction back (idempotent). */
    unreact(chat: number, seq: number, emoji: string): Promise<void>;
    /** Adds users to a group as members (admin or owner). */
    addMembers(chat: number, users: string[]): Promise<void>;
    /** Removes a member from a group (admin or owner). */
    removeMember(chat: number, user: string): Promise<void>;
    /** Sets a member's role (owner). */
    setRole(chat: number, user: string, role: Role): Promise<void>;
    /** Changes a chat's name, description or metadata. */
    updateChat(chat: number, change: ChatInfoChange): Promise<void>;
    /** Leaves a group; the last owner names a `successor`. */
    leave(chat: number, successor?: string): Promise<void>;
    /** Searches the user's chats (the REST query language). */
    search(query: string, params?: SearchParams): Promise<SearchResultsFrame>;
    /** Asks for an upload URL for a file to send in `chat`. */
    upload(chat: number, params: UploadParams): Promise<UploadGrant>;
    /**
     * Uploads a file in one call: `upload`, then PUT of the bytes to the granted
     * URL (relative URLs resolve against the node). Resolves with the attachment
     * id to give `send`'s `attachments`.
     */
    uploadFile(chat: number, data: Blob | ArrayBuffer | Uint8Array, meta: {
        name: string;
        content_type: string;
    }): Promise<string>;
    /** Registers this device for push notifications while the user is away. */
    registerDevice(device_id: string, provider: PushProvider, token: string): Promise<DeviceRegisteredFrame>;
    /** Forgets a device. */
    unregisterDevice(device_id: string): Promise<DeviceUnregisteredFrame>;
    /** Reads (no argument) or changes the user's notification settings; resolves with them as they are now. */
    notificationSettings(change?: NotificationSettingsChange): Promise<NotificationSettings>;
}
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
/**
 * The REST API for an application's backend (the app token is its secret:
 * never ship it to browsers). Every method resolves with the parsed answer or
 * rejects with a `WeftHttpError` carrying `status` and the stable `code`.
 */
export declare class WeftRest {
    readonly baseUrl: string;
    appToken: string | undefined;
    private readonly adminKey;
    private readonly fetchFn;
    private readonly timeoutMs;
    constructor(options: WeftRestOptions);
    /** A copy bound to another application. */
    forApp(appToken: string): WeftRest;
    /** Any call: `path` under the base URL (e.g. `/api/v1/…`). */
    call<T = unknown>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
    private app;
    private chat;
    private msg;
    /** `POST /applications`; the answer carries `token` and `secret` (shown once). Sets `appToken` when unset. */
    createApplication(p: {
        name: string;
        description?: string;
        metadata?: Record<string, unknown>;
    }): Promise<CreatedApplication>;
    getApplication(): Promise<Application>;
    updateApplication(p: {
        name?: string;
        jwks_url?: string | null;
        user_groups?: 'open' | 'backend_only';
        description?: string | null;
        metadata?: Record<string, unknown> | null;
    }): Promise<Application>;
    /** A new signing secret: tokens signed with the old one stop working (sessions close with 4001). */
    rotateSecret(): Promise<{
        secret: string;
    }>;
    /** A user token (HS256 JWT), 1 h by default, 30 days at most. */
    createUserToken(user: string, p?: {
        ttl_seconds?: number;
    }): Promise<UserToken>;
    createChat(p?: {
        name?: string;
        description?: string;
        metadata?: Record<string, unknown>;
        created_by?: string;
    }): Promise<Chat>;
    listChats(p?: ListParams): Promise<Chat[]>;
    getChat(chat: number): Promise<Chat>;
    updateChat(chat: number, change: ChatInfoChange): Promise<Chat>;
    userChats(user: string, p?: ListParams): Promise<Chat[]>;
    listMembers(chat: number): Promise<Member[]>;
    /** Adds a member (as `role`, default member) or changes a member's role. */
    putMember(chat: number, user: string, p?: {
        role?: Role;
    }): Promise<void>;
    removeMember(chat: number, user: string): Promise<void>;
    readState(chat: number): Promise<ReadState[]>;
    presence(user: string): Promise<Presence>;
    /** Posts a message (as `sender`, or as the backend); `idempotencyKey` makes retries safe. */
    postMessage(chat: number, p: {
        body: string;
        sender?: string;
        reply_to?: number;
        attachments?: string[];
    }, opts?: {
        idempotencyKey?: string;
    }): Promise<RestMessage>;
    /** Newest first; `before`/`after` bound the numbers. */
    listMessages(chat: number, p?: MessageListParams): Promise<RestMessage[]>;
    getMessage(chat: number, n: number, p?: {
        user?: string;
    }): Promise<RestMessage>;
    editMessage(chat: number, n: number, body: string): Promise<RestMessage>;
    deleteMessage(chat: number, n: number): Promise<void>;
    replies(chat: number, n: number, p?: {
        after?: number;
        per_page?: number;
        user?: string;
    }): Promise<RestMessage[]>;
    versions(chat: number, n: number): Promise<MessageVersion[]>;
    reactions(chat: number, n: number): Promise<Record<string, string[]>>;
    react(chat: number, n: number, emoji: string, user: string): Promise<RestMessage>;
    unreact(chat: number, n: number, emoji: string, user: string): Promise<RestMessage>;
    searchChat(chat: number, q: string, p?: ListParams & {
        user?: string;
    }): Promise<RestSearchHit[]>;
    searchUser(user: string, q: string, p?: ListParams & {
        chat?: number;
        sender?: string;
        after?: string;
        before?: string;
    }): Promise<RestSearchHit[]>;
    createAttachment(chat: number, p: {
        name: string;
        content_type: string;
        size: number;
        created_by?: string;
    }): Promise<UploadGrant>;
    /** PUTs the bytes to an upload URL (relative URLs resolve against the base URL). */
    uploadBytes(uploadUrl: string, data: Blob | ArrayBuffer | Uint8Array, contentType: string): Promise<void>;
    createWebhook(p: {
        url: string;
        events: string[];
    }): Promise<Webhook>;
    listWebhooks(): Promise<Webhook[]>;
    getWebhook(id: string): Promise<Webhook>;
    updateWebhook(id: string, p: {
        url?: string;
        events?: string[];
        enabled?: true;
    }): Promise<Webhook>;
    rotateWebhook(id: string): Promise<Webhook>;
    deleteWebhook(id: string): Promise<void>;
    replayWebhook(id: string, p: {
        chat: number;
        after?: number;
    }): Promise<{
        queued: number;
        through: number;
    }>;
    webhookDeliveries(id: string): Promise<{
        webhook: string;
        deliveries: WebhookDelivery[];
    }>;
    putDevice(user: string, deviceId: string, p: {
        provider: PushProvider;
        token: string;
    }): Promise<Device>;
    listDevices(user: string): Promise<Device[]>;
    deleteDevice(user: string, deviceId: string): Promise<void>;
    getNotificationSettings(user: string): Promise<NotificationSettings>;
    updateNotificationSettings(user: string, change: NotificationSettingsChange): Promise<NotificationSettings>;
    /** `GET /api/v1/me` with a user token: who it names. */
    me(userToken: string): Promise<{
        user: string;
        app: string;
    }>;
    /** The cluster's live members (admin key). */
    cluster(): Promise<unknown>;
    /** `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the node's REST API. */
    openapi(): Promise<Record<string, unknown>>;
    /** True when `/readyz` answers 200. */
    ready(): Promise<boolean>;
}
/** The same class, by the name backends look for. */
export { WeftRest as WeftAdmin };
