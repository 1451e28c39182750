/** A request id: a string of 1–64 bytes or a non-negative integer. */
export type RequestId = string | number;
/** A chat's role of a member. */
export type Role = 'owner' | 'admin' | 'member';
/** An attached file as every read of a message shows it. */
export interface AttachedFile {
    id: string;
    name: string;
    content_type: string;
    size: number;
    /** A fresh, time-limited download URL (relative to the node unless `attachments.public_url` is set). */
    url: string;
}
/** One emoji's reactions as the reader sees them. */
export interface ReactionCount {
    count: number;
    me: boolean;
}
/** A message as the WebSocket shows it (live `message`, `messages` items). */
export interface Message {
    chat: number;
    seq: number;
    sender: string | null;
    /** Null once deleted. */
    body: string | null;
    sent_at: string;
    client_msg_id: string | null;
    reply_to: number | null;
    edited_at?: string;
    deleted?: boolean;
    deleted_at?: string;
    reply_count?: number;
    last_reply_at?: string;
    attachments?: AttachedFile[];
    reactions?: Record<string, ReactionCount>;
    mentions?: string[];
}
/** The user's notification settings. */
export interface QuietHours {
    from: string;
    to: string;
    tz: string;
}
export type ChatNotifyLevel = 'all' | 'mentions' | 'none';
export interface NotificationSettings {
    email: boolean;
    email_address: string | null;
    push: boolean;
    chats: Record<string, ChatNotifyLevel>;
    quiet_hours: QuietHours | null;
}
/** The fields of `notification_settings` that change (none: read them). */
export interface NotificationSettingsChange {
    email?: boolean;
    email_address?: string | null;
    push?: boolean;
    chats?: Record<string, ChatNotifyLevel>;
    quiet_hours?: QuietHours | null;
}
export interface SearchHit {
    chat: number;
    seq: number;
    sender: string | null;
    body: string;
    created_at: string;
    /** The body HTML-escaped, matched words in `<mark>…</mark>`. */
    highlight: string;
    reactions?: Record<string, ReactionCount>;
}
export interface UploadGrant {
    /** The attachment's id, for `send`'s `attachments`. */
    id: string;
    /** Where to PUT exactly `size` bytes with the declared `Content-Type`. */
    upload_url: string;
    expires_at: string;
}
export type PushProvider = 'fcm' | 'apns' | 'webpush';
export interface WelcomeFrame {
    type: 'welcome';
    user: string;
    session: string;
    node: string;
}
export interface AckFrame {
    type: 'ack';
    id?: RequestId;
    chat: number;
    /** Present on the ack of a `send`. */
    seq?: number;
}
export interface MessageFrame extends Message {
    type: 'message';
}
export interface MessagesFrame {
    type: 'messages';
    id?: RequestId;
    chat: number;
    /** Oldest first. */
    items: Message[];
    /**
     * A forward `sync` (and a catch-up): newer messages follow the last item. A
     * backward `sync` (`history()`): older messages precede the first item.
     */
    has_more: boolean;
    /**
     * Only in a `hello` catch-up: true on the last frame of the chat's catch-up
     * (`has_more` then says it stopped at the node's `resume_max_messages`).
     */
    done?: boolean;
}
export interface TypingFrame {
    type: 'typing';
    chat: number;
    user: string;
}
export interface PresenceFrame {
    type: 'presence';
    user: string;
    online: boolean;
}
/** Live frames of `chat` were lost between nodes: the client syncs the chat (it does so itself). */
export interface ResyncFrame {
    type: 'resync';
    chat: number;
}
export interface ReceiptFrame {
    type: 'receipt';
    chat: number;
    user: string;
    kind: 'delivered' | 'read';
    seq: number;
}
export interface UploadReadyFrame {
    type: 'upload_ready';
    id?: RequestId;
    attachment: UploadGrant;
}
export interface MessageEditedFrame {
    type: 'message_edited';
    chat: number;
    seq: number;
    body: string;
    edited_at: string;
}
export interface MessageDeletedFrame {
    type: 'message_deleted';
    chat: number;
    seq: number;
    deleted_at: string;
}
export interface ThreadUpdatedFrame {
    type: 'thread_updated';
    chat: number;
    seq: number;
    reply_count: number;
    last_reply_at: string | null;
}
export interface ReactionFrame {
    type: 'reaction';
    chat: number;
    seq: number;
    user: string;
    emoji: string;
    op: 'add' | 'remove';
    count: number;
}
export interface ChatUpdatedFrame {
    type: 'chat_updated';
    chat: number;
    kind: 'group' | 'direct';
    name: string | null;
    description: string | null;
    metadata: Record<string, unknown>;
    created_by: string | null;
    updated_at: string;
}
export interface MemberJoinedFrame {
    type: 'member_joined';
    chat: number;
    user: string;
    role: Role;
}
export interface MemberLeftFrame {
    type: 'member_left';
    chat: number;
    user: string;
}
export interface RoleChangedFrame {
    type: 'role_changed';
    chat: number;
    user: string;
    role: Role;
}
export interface DeviceRegisteredFrame {
    type: 'device_registered';
    id?: RequestId;
    device_id: string;
    provider: PushProvider;
}
export interface DeviceUnregisteredFrame {
    type: 'device_unregistered';
    id?: RequestId;
    device_id: string;
}
export interface NotificationSettingsFrame extends NotificationSettings {
    type: 'notification_settings';
    id?: RequestId;
}
export interface SearchResultsFrame {
    type: 'search_results';
    id?: RequestId;
    items: SearchHit[];
    has_more: boolean;
}
export interface ErrorFrame {
    type: 'error';
    id?: RequestId;
    /** The chat of a `hello` whose catch-up failed (the hello's other chats go on). */
    chat?: number;
    code: string;
    message: string;
    retry_after_ms?: number;
}
/** The session's token expires at `expires_at`: send `refresh` with a new one before, or the socket closes with 4001. */
export interface TokenExpiringFrame {
    type: 'token_expiring';
    /** RFC 3339. */
    expires_at: string;
}
/** The answer to `refresh`: the session goes on with the new token. */
export interface RefreshedFrame {
    type: 'refreshed';
    id?: RequestId;
    /** When the new token expires (RFC 3339); absent for a token without expiry. */
    expires_at?: string;
}
/** Every frame the server sends. */
export type ServerFrame = WelcomeFrame | AckFrame | MessageFrame | MessagesFrame | TypingFrame | PresenceFrame | ResyncFrame | ReceiptFrame | UploadReadyFrame | MessageEditedFrame | MessageDeletedFrame | ThreadUpdatedFrame | ReactionFrame | ChatUpdatedFrame | MemberJoinedFrame | MemberLeftFrame | RoleChangedFrame | DeviceRegisteredFrame | DeviceUnregisteredFrame | NotificationSettingsFrame | SearchResultsFrame | TokenExpiringFrame | RefreshedFrame | ErrorFrame;
/** The `type` of every server frame. */
export type ServerFrameType = ServerFrame['type'];
/** What `send` takes: exactly one of `chat` and `recipients`. */
export interface SendParams {
    /** The chat, unless `recipients` is given. */
    chat?: number;
    /** 1–100 user ids: one finds or creates the direct chat of the pair; several create a group. */
    recipients?: string[];
    body: string;
    /** The idempotency key (1–128 bytes); made for you when absent. */
    client_msg_id?: string;
    reply_to?: number;
    /** Attachment ids from `upload` (or `uploadFile`). */
    attachments?: string[];
}
/** What `send` resolves to: the `ack`. */
export interface SendAck {
    chat: number;
    seq: number;
    client_msg_id: string;
}
export interface ChatInfoChange {
    /** null or "" clears it. */
    name?: string | null;
    description?: string | null;
    /** Keys merge one level deep (a null value removes its key); null clears every key. */
    metadata?: Record<string, unknown> | null;
}
export interface SearchParams {
    chat?: number;
    page?: number;
    per_page?: number;
}
/** What `history()` reads: the newest `limit` messages below `before` (without it: the chat's newest). */
export interface HistoryOptions {
    /** Only messages numbered below this one (at least 1). */
    before?: number;
    /** 1–500. Default 50. */
    limit?: number;
}
export interface UploadParams {
    name: string;
    content_type: string;
    size: number;
}
export interface Application {
    id: string;
    name: string;
    /** The application's token: its secret for REST. */
    token: string;
    jwks_url: string | null;
    user_groups: 'open' | 'backend_only';
    description: string | null;
    metadata: Record<string, unknown>;
    chats_count: number;
    created_at: string;
    updated_at: string;
}
export interface CreatedApplication extends Application {
    /** Signs user tokens (HS256); shown only here and on rotation. */
    secret: string;
}
export interface Chat {
    number: number;
    kind: 'group' | 'direct';
    name: string | null;
    description: string | null;
    metadata: Record<string, unknown>;
    created_by: string | null;
    messages_count: number;
    created_at: string;
    updated_at: string;
}
/** A message as REST shows it (`number`, not `seq`). */
export interface RestMessage {
    number: number;
    body: string | null;
    sender?: string;
    reply_to?: number;
    created_at: string;
    updated_at: string;
    edited_at?: string;
    deleted?: boolean;
    deleted_at?: string;
    reply_count?: number;
    last_reply_at?: string;
    attachments?: AttachedFile[];
    reactions?: Record<string, ReactionCount>;
    mentions?: string[];
}
export interface RestSearchHit extends RestMessage {
    chat: number;
    highlight: string;
}
export interface MessageVersion {
    body: string;
    written_at: string;
    replaced_at: string;
}
export interface Member {
    user_id: string;
    role: Role;
    joined_at: string;
}
export interface ReadState {
    user_id: string;
    delivered: number;
    read: number;
}
export interface Presence {
    user_id: string;
    online: boolean;
    sessions: number;
    last_seen: string | null;
}
export interface UserToken {
    token: string;
    expires_at: string;
}
export interface Webhook {
    id: string;
    url: string;
    events: string[];
    /** Only when just created or rotated. */
    secret?: string;
    created_at: string;
    enabled: boolean;
    disabled_at?: string;
    disabled_reason?: string;
}
export interface WebhookDelivery {
    event_id: string;
    type: string;
    attempt: number;
    outcome: 'delivered' | 'failed' | 'gave_up' | 'disabled' | string;
    status?: number;
    error?: string;
    at: string;
    duration_ms: number;
    next_retry_at?: string;
}
export interface Device {
    id: string;
    provider: PushProvider;
    created_at: string;
    updated_at: string;
}
export interface ListParams {
    page?: number;
    per_page?: number;
}
export interface MessageListParams extends ListParams {
    before?: number;
    after?: number;
    /** `me` in reactions is this user's. */
    user?: string;
}
