//! The WebSocket wire protocol: JSON text frames, each an object with a `type`.
//!
//! Decoding never panics and says precisely what is wrong, with the request's
//! `id` when one could be read, so the answer can echo it. `docs/protocol.md`
//! documents every frame with an example.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AttachmentId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::AttachedFile;

/// The id a client gives a request; echoed in the answer. A string (at most 64
/// bytes) or a non-negative integer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A number.
    Number(u64),
    /// A string.
    Text(String),
}

/// The longest string request id.
pub const MAX_REQUEST_ID: usize = 64;
/// The longest `client_msg_id`.
pub const MAX_CLIENT_MSG_ID: usize = 128;
/// The most messages one `sync` may ask for.
pub const MAX_SYNC_LIMIT: u32 = 500;
/// The messages a `sync` without a `limit` asks for.
pub const DEFAULT_SYNC_LIMIT: u32 = 100;
/// The most chats one `hello` may resume.
pub const MAX_RESUME: usize = 1_000;
/// The most hits one `search` may ask for per page.
pub const MAX_SEARCH_PER_PAGE: u32 = 100;
/// The deepest page one `search` may ask for.
pub const MAX_SEARCH_PAGE: u32 = 100;

/// A position to resume a chat from: every message after `after`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The chat.
    pub chat: ChatNumber,
    /// The last message number the client has.
    pub after: MessageNumber,
}

/// Where a `sync` reads: exactly one of `after`, `before` and `latest: true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncFrom {
    /// Forward: the messages numbered above this one, a window of `limit` numbers.
    After(MessageNumber),
    /// Backward: the newest `limit` messages numbered below this one.
    Before(MessageNumber),
    /// Backward from the chat's newest message.
    Latest,
}

/// A `sync` request, its rules checked as it is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSync")]
pub struct SyncRequest {
    /// Echoed in the `messages` answer.
    pub id: Option<RequestId>,
    /// The chat.
    pub chat: ChatNumber,
    /// Forward or backward, from where.
    pub from: SyncFrom,
    /// At most this many (1 to 500, default 100).
    pub limit: u32,
}

/// A `sync` frame as written, before its rules are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    id: Option<RequestId>,
    chat: ChatNumber,
    after: Option<MessageNumber>,
    before: Option<MessageNumber>,
    latest: Option<bool>,
    limit: Option<u32>,
}

impl TryFrom<RawSync> for SyncRequest {
    type Error = String;

    fn try_from(raw: RawSync) -> Result<Self, String> {
        let from = match (raw.after, raw.before, raw.latest) {
            (Some(after), None, None) => SyncFrom::After(after),
            (None, Some(MessageNumber(0)), None) => return Err("`before` must be at least 1".into()),
            (None, Some(before), None) => SyncFrom::Before(before),
            (None, None, Some(true)) => SyncFrom::Latest,
            _ => return Err("give exactly one of `after`, `before` and `latest: true`".into()),
        };
        let limit = raw.limit.unwrap_or(DEFAULT_SYNC_LIMIT);
        if limit == 0 || limit > MAX_SYNC_LIMIT {
            return Err(format!("`limit` must be 1 to {MAX_SYNC_LIMIT}"));
        }
        Ok(Self { id: raw.id, chat: raw.chat, from, limit })
    }
}

/// What a client may send.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Post a message to `chat`, or to `recipients` (creating the chat on the fly).
    Send {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat, unless `recipients` is given.
        chat: Option<ChatNumber>,
        /// The text.
        body: String,
        /// The sender's idempotency key: a retry returns the first `ack`.
        client_msg_id: String,
        /// Users to send to when no chat is named.
        recipients: Option<Vec<String>>,
        /// The message this one answers.
        reply_to: Option<MessageNumber>,
        /// Uploaded attachments (ids from `upload_ready`) to attach.
        attachments: Option<Vec<AttachmentId>>,
    },
    /// Ask for an upload URL for a file to attach in `chat` (answered with `upload_ready`).
    Upload {
        /// Echoed in the answer.
        id: Option<RequestId>,
        /// The chat the file will be sent to.
        chat: ChatNumber,
        /// The file name to show.
        name: String,
        /// Its media type.
        content_type: String,
        /// Its size in bytes.
        size: u64,
    },
    /// Page through a chat's history: forward after a position, or backward
    /// from a number or the newest message.
    Sync(SyncRequest),
    /// Resume chats after being offline: every missed message, then live traffic.
    Hello {
        /// Echoed in the answers.
        id: Option<RequestId>,
        /// Where each chat resumes.
        resume: Vec<Resume>,
    },
    /// The user is typing in `chat` (never persisted).
    Typing {
        /// Echoed in an error answer.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
    },
    /// Messages up to `seq` reached this user's device.
    Delivered {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// The newest delivered message.
        seq: MessageNumber,
    },
    /// Messages up to `seq` were read.
    Read {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// The newest read message.
        seq: MessageNumber,
    },
    /// Edit one's own message (answered with `ack`).
    Edit {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
        /// The new text.
        body: String,
    },
    /// Delete one's own message (answered with `ack`).
    Delete {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
    },
    /// Add users to a group as members (admin or owner; answered with `ack`).
    AddMembers {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// 1 to 100 user ids.
        users: Vec<String>,
    },
    /// Remove a member from a group (admin or owner; answered with `ack`).
    RemoveMember {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// Whom.
        user: String,
    },
    /// Set a member's role (owner; answered with `ack`).
    SetRole {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// Whose.
        user: String,
        /// `owner`, `admin` or `member`.
        role: String,
    },
    /// Change a chat's info (admin or owner of a group; answered with `ack`).
    UpdateChat {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// A new name; null or "" clears it.
        #[serde(default, deserialize_with = "present")]
        name: Option<Option<String>>,
        /// A new description; null or "" clears it.
        #[serde(default, deserialize_with = "present")]
        description: Option<Option<String>>,
        /// Keys to set (a null value removes its key); null clears every key.
        #[serde(default, deserialize_with = "present")]
        metadata: Option<Option<Value>>,
    },
    /// Leave a group; the last owner names a `successor` (answered with `ack`).
    Leave {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// A member who becomes owner.
        successor: Option<String>,
    },
    /// React to a message of one of the user's chats (answered with `ack`;
    /// reacting again with the same emoji changes nothing).
    React {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
        /// The reaction: an emoji or a short code, 1 to 16 characters, no spaces.
        emoji: String,
    },
    /// Take one's reaction back (answered with `ack`; idempotent too).
    Unreact {
        /// Echoed in the `ack`.
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
        /// The reaction.
        emoji: String,
    },
    /// Register (or re-register) one of the user's devices for push
    /// notifications (answered with `device_registered`).
    RegisterDevice {
        /// Echoed in the answer.
        id: Option<RequestId>,
        /// The device's id, chosen by the client.
        device_id: String,
        /// `fcm`, `apns` or `webpush`.
        provider: String,
        /// The provider's token (for `webpush`, the subscription as JSON text).
        token: String,
    },
    /// Forget one of the user's devices (answered with `device_unregistered`).
    UnregisterDevice {
        /// Echoed in the answer.
        id: Option<RequestId>,
        /// The device's id.
        device_id: String,
    },
    /// Read or change the user's notification settings (answered with
    /// `notification_settings`); the fields given change, none reads them.
    NotificationSettings {
        /// Echoed in the answer.
        id: Option<RequestId>,
        /// Email digests on or off.
        #[serde(default)]
        email: Option<bool>,
        /// Where digests go (null forgets it).
        #[serde(default, deserialize_with = "present")]
        email_address: Option<Option<String>>,
        /// Pushes on or off.
        #[serde(default)]
        push: Option<bool>,
        /// Chat number → `all`, `mentions` or `none`.
        #[serde(default)]
        chats: Option<BTreeMap<String, String>>,
        /// `{"from","to","tz"}` or null for none.
        #[serde(default, deserialize_with = "present")]
        quiet_hours: Option<Option<QuietHoursIn>>,
    },
    /// Continue the session with a new access token of the same user (and
    /// session) before the current one expires (answered with `refreshed`).
    Refresh {
        /// Echoed in the answer.
        id: Option<RequestId>,
        /// The new access token.
        token: String,
    },
    /// Search the user's chats (answered with `search_results`).
    Search {
        /// Echoed in the answer.
        id: Option<RequestId>,
        /// The query, operators included (`from:`, `in:`, `before:`, `after:`, `is:thread`, `has:file`).
        query: String,
        /// Only this chat.
        chat: Option<ChatNumber>,
        /// Which page (from 1; default 1).
        page: Option<u32>,
        /// Hits per page (default 20, at most 100).
        per_page: Option<u32>,
    },
}

/// Quiet hours as a client sends them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursIn {
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM`.
    pub to: String,
    /// An IANA time zone.
    pub tz: String,
}

/// The frame types a client may send.
pub const CLIENT_TYPES: &[&str] = &[
    "refresh",
    "send",
    "sync",
    "hello",
    "typing",
    "delivered",
    "read",
    "search",
    "edit",
    "delete",
    "react",
    "unreact",
    "upload",
    "add_members",
    "remove_member",
    "set_role",
    "update_chat",
    "leave",
    "register_device",
    "unregister_device",
    "notification_settings",
];

/// The most attachment ids one `send` may name (the configured limit is checked too).
pub const MAX_ATTACHMENTS: usize = 100;

/// A field given, even as null: `Some(None)`; absent: `None` (with `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What is wrong with a client frame; each maps to a stable `error` code.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON.
    #[error("the frame is not valid JSON")]
    MalformedJson,
    /// JSON, but not an object with a string `type`.
    #[error("a frame is a JSON object with a string `type`")]
    NotAFrame,
    /// A `type` this server does not know.
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
    /// A known type with missing, extra or wrongly typed fields.
    #[error("invalid `{kind}` frame: {reason}")]
    Invalid {
        /// The frame type.
        kind: String,
        /// What serde or a rule said.
        reason: String,
    },
    /// A binary frame: the protocol is JSON text.
    #[error("binary frames are not supported; send JSON text frames")]
    Binary,
    /// Over the configured frame size.
    #[error("the frame is larger than {0} bytes")]
    TooLarge(usize),
}

impl FrameError {
    /// The stable code sent in the `error` frame.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::MalformedJson => "malformed_json",
            FrameError::NotAFrame | FrameError::Invalid { .. } => "invalid_frame",
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::Binary => "binary_not_supported",
            FrameError::TooLarge(_) => "frame_too_large",
        }
    }
}

/// A decoded frame, or the error and the request id it carried (if readable).
pub type Decoded = Result<ClientFrame, (FrameError, Option<RequestId>)>;

/// Decodes one text frame.
pub fn decode(text: &str) -> Decoded {
    let value: Value = serde_json::from_str(text).map_err(|_| (FrameError::MalformedJson, None))?;
    let id = value.get("id").and_then(|v| serde_json::from_value::<RequestId>(v.clone()).ok());
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Err((FrameError::NotAFrame, id));
    };
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err((FrameError::UnknownType(truncate(&kind, 64)), id));
    }
    let invalid = |reason: String| (FrameError::Invalid { kind: kind.clone(), reason }, id.clone());
    let frame: ClientFrame = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    check(&frame).map_err(invalid)?;
    Ok(frame)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Rules serde cannot express.
fn check(frame: &ClientFrame) -> Result<(), String> {
    let id = frame.request_id();
    if let Some(RequestId::Text(s)) = id
        && (s.is_empty() || s.len() > MAX_REQUEST_ID)
    {
        return Err(format!("`id` must be 1 to {MAX_REQUEST_ID} bytes"));
    }
    match frame {
        ClientFrame::Send { chat, body, client_msg_id, recipients, attachments, .. } => {
            if body.trim().is_empty() {
                return Err("`body` must not be empty".into());
            }
            if attachments.as_ref().is_some_and(|a| a.len() > MAX_ATTACHMENTS) {
                return Err(format!("`attachments` names at most {MAX_ATTACHMENTS} ids"));
            }
            if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID {
                return Err(format!("`client_msg_id` must be 1 to {MAX_CLIENT_MSG_ID} bytes"));
            }
            match (chat, recipients) {
                (Some(_), Some(_)) => return Err("give `chat` or `recipients`, not both".into()),
                (None, None) => return Err("give `chat` or `recipients`".into()),
                (None, Some(r)) if r.is_empty() => return Err("`recipients` must not be empty".into()),
                (None, Some(r)) if r.len() > crate::model::MAX_RECIPIENTS => {
                    return Err(format!("`recipients` names at most {} users", crate::model::MAX_RECIPIENTS));
                }
                (None, Some(r)) => {
                    if let Some(bad) = r.iter().find(|u| UserId::parse(u).is_err()) {
                        return Err(format!("`recipients`: `{}` is not a valid user id", truncate(bad, 64)));
                    }
                }
                (Some(_), None) => {}
            }
        }
        ClientFrame::Hello { resume, .. } if resume.len() > MAX_RESUME => {
            return Err(format!("`resume` lists at most {MAX_RESUME} chats"));
        }
        ClientFrame::Edit { body, .. } if body.trim().is_empty() => {
            return Err("`body` must not be empty".into());
        }
        ClientFrame::Upload { name, content_type, .. }
            if name.trim().is_empty() || content_type.trim().is_empty() =>
        {
            return Err("`name` and `content_type` must not be empty".into());
        }
        ClientFrame::React { emoji, .. } | ClientFrame::Unreact { emoji, .. } => {
            crate::model::check_emoji(emoji).map_err(|e| format!("`emoji` {e}"))?;
        }
        ClientFrame::AddMembers { users, .. } => {
            if users.is_empty() || users.len() > crate::model::MAX_RECIPIENTS {
                return Err(format!("`users` names 1 to {} users", crate::model::MAX_RECIPIENTS));
            }
            if let Some(bad) = users.iter().find(|u| UserId::parse(u).is_err()) {
                return Err(format!("`users`: `{}` is not a valid user id", truncate(bad, 64)));
            }
        }
        ClientFrame::RemoveMember { user, .. } | ClientFrame::Leave { successor: Some(user), .. }
            if UserId::parse(user).is_err() =>
        {
            return Err(format!("`{}` is not a valid user id", truncate(user, 64)));
        }
        ClientFrame::SetRole { user, role, .. } => {
            if UserId::parse(user).is_err() {
                return Err(format!("`{}` is not a valid user id", truncate(user, 64)));
            }
            if crate::model::Role::parse(role).is_none() {
                return Err("`role` must be \"owner\", \"admin\" or \"member\"".into());
            }
        }
        ClientFrame::UpdateChat { name, description, metadata, .. } => {
            if name.is_none() && description.is_none() && metadata.is_none() {
                return Err("give `name`, `description` or `metadata`".into());
            }
            if let Some(Some(Value::Array(_) | Value::String(_) | Value::Number(_) | Value::Bool(_))) =
                metadata
            {
                return Err("`metadata` must be a JSON object or null".into());
            }
        }
        ClientFrame::Search { page, per_page, .. } => {
            if page.is_some_and(|p| p == 0 || p > MAX_SEARCH_PAGE) {
                return Err(format!("`page` must be 1 to {MAX_SEARCH_PAGE}"));
            }
            if per_page.is_some_and(|p| p == 0 || p > MAX_SEARCH_PER_PAGE) {
                return Err(format!("`per_page` must be 1 to {MAX_SEARCH_PER_PAGE}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A granted upload, as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UploadOut {
    /// The attachment's id, for `send`'s `attachments`.
    pub id: AttachmentId,
    /// Where to PUT the bytes (with the declared `Content-Type`).
    pub upload_url: String,
    /// When the URL stops working.
    pub expires_at: Timestamp,
}

/// A message as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageOut {
    /// The chat.
    pub chat: ChatNumber,
    /// Its number.
    pub seq: MessageNumber,
    /// Who sent it.
    pub sender: Option<UserId>,
    /// The text (null once deleted).
    pub body: Option<String>,
    /// When it was accepted.
    pub sent_at: Timestamp,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// The message it answers.
    pub reply_to: Option<MessageNumber>,
    /// When the body was last edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// A deleted message (a tombstone: `body` is null).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// When it was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// Replies to it.
    #[serde(skip_serializing_if = "crate::ids::is_zero")]
    pub reply_count: u64,
    /// When its newest reply was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<Timestamp>,
    /// The attached files, each with a time-limited `url`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachedFile>,
    /// Each emoji's count and whether the reader is among them (only on
    /// messages read back: live `message` frames are new and have none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, ReactionOut>,
    /// The users its body mentions (`@user`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
}

/// One emoji's reactions, as the reader sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReactionOut {
    /// How many users reacted with it.
    pub count: u64,
    /// Whether the reader is one of them.
    pub me: bool,
}

impl ReactionOut {
    /// A message's reactions as `reader` sees them.
    pub fn of(reactions: &crate::model::Reactions, reader: Option<&UserId>) -> BTreeMap<String, Self> {
        reactions.seen_by(reader).into_iter().map(|(e, c)| (e, Self { count: c.count, me: c.me })).collect()
    }
}

/// Whether a `reaction` event adds or removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionOp {
    /// Reacted.
    Add,
    /// Took it back.
    Remove,
}

/// A chat's info as clients see it (`chat_updated`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatOut {
    /// The chat.
    pub chat: ChatNumber,
    /// `group` or `direct`.
    pub kind: &'static str,
    /// Its name.
    pub name: Option<String>,
    /// What it is about.
    pub description: Option<String>,
    /// The application's own data (a JSON object, `{}` when none).
    pub metadata: serde_json::Map<String, Value>,
    /// Who created it, when a user did.
    pub created_by: Option<UserId>,
    /// When its info last changed.
    pub updated_at: Timestamp,
}

/// A search hit as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchItem {
    /// The chat.
    pub chat: ChatNumber,
    /// The message's number.
    pub seq: MessageNumber,
    /// Who sent it.
    pub sender: Option<UserId>,
    /// The text.
    pub body: String,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// The body with the matched words in `<mark>…</mark>`, the rest HTML-escaped.
    pub highlight: String,
    /// Each emoji's count and whether the reader is among them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, ReactionOut>,
}

/// Which receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// Reached a device.
    Delivered,
    /// Read.
    Read,
}

/// What the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every session.
    Welcome {
        /// The authenticated user.
        user: UserId,
        /// This session's id.
        session: String,
        /// The node serving it.
        node: String,
    },
    /// A `send` was persisted.
    Ack {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The chat (new when the send created it).
        chat: ChatNumber,
        /// The message's number.
        seq: MessageNumber,
    },
    /// A new message in one of the user's chats.
    Message(MessageOut),
    /// A page of history, the answer to `sync`.
    Messages {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// Oldest first.
        items: Vec<MessageOut>,
        /// Forward (`after`): newer messages follow the last item. Backward
        /// (`before`, `latest`): older messages precede the first item.
        has_more: bool,
    },
    /// One frame of a chat's `hello` catch-up: a `messages` frame that says
    /// whether it ends the chat's catch-up.
    #[serde(rename = "messages")]
    CatchUp {
        /// The `hello`'s id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
        /// Oldest first.
        items: Vec<MessageOut>,
        /// Newer messages follow the last item: in more frames while `done`
        /// is false; past `gateway.resume_max_messages` (to page on with
        /// `sync`) on the last frame.
        has_more: bool,
        /// The last frame of this chat's catch-up.
        done: bool,
    },
    /// Someone is typing.
    Typing {
        /// The chat.
        chat: ChatNumber,
        /// Who.
        user: UserId,
    },
    /// A user came online or went offline.
    Presence {
        /// Who.
        user: UserId,
        /// Online now.
        online: bool,
    },
    /// Live frames of `chat` were lost between nodes (a peer's queue was full):
    /// `sync` the chat from the newest number held, as for a gap.
    Resync {
        /// The chat.
        chat: ChatNumber,
    },
    /// A member's delivered/read position moved.
    Receipt {
        /// The chat.
        chat: ChatNumber,
        /// Whose receipt.
        user: UserId,
        /// Delivered or read.
        kind: ReceiptKind,
        /// Up to this message.
        seq: MessageNumber,
    },
    /// The answer to `upload`: where to PUT the file.
    UploadReady {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The granted upload.
        attachment: UploadOut,
    },
    /// A message of one of the user's chats was edited.
    MessageEdited {
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
        /// Its new text.
        body: String,
        /// When.
        edited_at: Timestamp,
    },
    /// A message of one of the user's chats was deleted.
    MessageDeleted {
        /// The chat.
        chat: ChatNumber,
        /// The message (its number stays taken).
        seq: MessageNumber,
        /// When.
        deleted_at: Timestamp,
    },
    /// A message of one of the user's chats got a reply.
    ThreadUpdated {
        /// The chat.
        chat: ChatNumber,
        /// The parent.
        seq: MessageNumber,
        /// Its replies now.
        reply_count: u64,
        /// When the newest was sent.
        last_reply_at: Option<Timestamp>,
    },
    /// A group request (`add_members`, `remove_member`, `set_role`,
    /// `update_chat`, `leave`) was applied.
    #[serde(rename = "ack")]
    GroupAck {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The chat.
        chat: ChatNumber,
    },
    /// A chat's name, description or metadata changed.
    ChatUpdated(ChatOut),
    /// A user joined one of the user's chats.
    MemberJoined {
        /// The chat.
        chat: ChatNumber,
        /// Who.
        user: UserId,
        /// `owner`, `admin` or `member`.
        role: &'static str,
    },
    /// A user left one of the user's chats or was removed (also sent to that
    /// user's own sessions, after which they get nothing more of the chat).
    MemberLeft {
        /// The chat.
        chat: ChatNumber,
        /// Who.
        user: UserId,
    },
    /// A member's role changed.
    RoleChanged {
        /// The chat.
        chat: ChatNumber,
        /// Whose.
        user: UserId,
        /// `owner`, `admin` or `member`.
        role: &'static str,
    },
    /// Someone reacted to a message of one of the user's chats, or took a reaction back.
    Reaction {
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
        /// Who.
        user: UserId,
        /// With what.
        emoji: String,
        /// Added or removed.
        op: ReactionOp,
        /// How many users react with `emoji` now.
        count: u64,
    },
    /// The answer to `register_device`.
    DeviceRegistered {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The device.
        device_id: String,
        /// Its provider.
        provider: &'static str,
    },
    /// The answer to `unregister_device`.
    DeviceUnregistered {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The device.
        device_id: String,
    },
    /// The answer to `notification_settings`: the settings as they are now.
    NotificationSettings {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Email digests on.
        email: bool,
        /// Where they go.
        email_address: Option<String>,
        /// Pushes on.
        push: bool,
        /// Chat number → level, for the chats not at `all`.
        chats: BTreeMap<String, &'static str>,
        /// When pushes are held back.
        quiet_hours: Option<QuietHoursIn>,
    },
    /// The answer to `search`: best match first, ties newest first.
    SearchResults {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The hits of the page.
        items: Vec<SearchItem>,
        /// A next page holds more.
        has_more: bool,
    },
    /// The session's access token expires soon: send `refresh` with a new one.
    TokenExpiring {
        /// When it expires (the session closes with 4001 then, unless refreshed).
        expires_at: Timestamp,
    },
    /// The answer to `refresh`: the session goes on with the new token.
    Refreshed {
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// When the new token expires.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<Timestamp>,
    },
    /// A request failed; the session goes on.
    Error {
        /// The request's id, when it could be read.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The chat of a `hello` whose catch-up failed (the others go on).
        #[serde(skip_serializing_if = "Option::is_none")]
        chat: Option<ChatNumber>,
        /// A stable code.
        code: &'static str,
        /// For humans.
        message: String,
        /// With `rate_limited`: when to retry, in ms.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ClientFrame {
    /// The request `id` the frame carries, if any (echoed in its answer).
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            ClientFrame::Sync(SyncRequest { id, .. }) => id.as_ref(),
            ClientFrame::Send { id, .. }
            | ClientFrame::Hello { id, .. }
            | ClientFrame::Typing { id, .. }
            | ClientFrame::Delivered { id, .. }
            | ClientFrame::Read { id, .. }
            | ClientFrame::Search { id, .. }
            | ClientFrame::Edit { id, .. }
            | ClientFrame::Delete { id, .. }
            | ClientFrame::Upload { id, .. }
            | ClientFrame::React { id, .. }
            | ClientFrame::Unreact { id, .. }
            | ClientFrame::AddMembers { id, .. }
            | ClientFrame::RemoveMember { id, .. }
            | ClientFrame::SetRole { id, .. }
            | ClientFrame::UpdateChat { id, .. }
            | ClientFrame::Leave { id, .. }
            | ClientFrame::RegisterDevice { id, .. }
            | ClientFrame::UnregisterDevice { id, .. }
            | ClientFrame::NotificationSettings { id, .. }
            | ClientFrame::Refresh { id, .. } => id.as_ref(),
        }
    }

    /// The frame's `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Send { .. } => "send",
            ClientFrame::Sync(_) => "sync",
            ClientFrame::Hello { .. } => "hello",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Delivered { .. } => "delivered",
            ClientFrame::Read { .. } => "read",
            ClientFrame::Search { .. } => "search",
            ClientFrame::Edit { .. } => "edit",
            ClientFrame::Delete { .. } => "delete",
            ClientFrame::Upload { .. } => "upload",
            ClientFrame::React { .. } => "react",
            ClientFrame::Unreact { .. } => "unreact",
            ClientFrame::AddMembers { .. } => "add_members",
            ClientFrame::RemoveMember { .. } => "remove_member",
            ClientFrame::SetRole { .. } => "set_role",
            ClientFrame::UpdateChat { .. } => "update_chat",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::RegisterDevice { .. } => "register_device",
            ClientFrame::UnregisterDevice { .. } => "unregister_device",
            ClientFrame::NotificationSettings { .. } => "notification_settings",
            ClientFrame::Refresh { .. } => "refresh",
        }
    }
}

impl ServerFrame {
    /// The frame's `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Welcome { .. } => "welcome",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Message(_) => "message",
            ServerFrame::Messages { .. } | ServerFrame::CatchUp { .. } => "messages",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::Presence { .. } => "presence",
            ServerFrame::Resync { .. } => "resync",
            ServerFrame::Receipt { .. } => "receipt",
            ServerFrame::SearchResults { .. } => "search_results",
            ServerFrame::DeviceRegistered { .. } => "device_registered",
            ServerFrame::DeviceUnregistered { .. } => "device_unregistered",
            ServerFrame::NotificationSettings { .. } => "notification_settings",
            ServerFrame::MessageEdited { .. } => "message_edited",
            ServerFrame::UploadReady { .. } => "upload_ready",
            ServerFrame::MessageDeleted { .. } => "message_deleted",
            ServerFrame::ThreadUpdated { .. } => "thread_updated",
            ServerFrame::Reaction { .. } => "reaction",
            ServerFrame::GroupAck { .. } => "ack",
            ServerFrame::ChatUpdated(_) => "chat_updated",
            ServerFrame::MemberJoined { .. } => "member_joined",
            ServerFrame::MemberLeft { .. } => "member_left",
            ServerFrame::RoleChanged { .. } => "role_changed",
            ServerFrame::TokenExpiring { .. } => "token_expiring",
            ServerFrame::Refreshed { .. } => "refreshed",
            ServerFrame::Error { .. } => "error",
        }
    }

    /// The error frame for a frame that could not be decoded.
    pub fn from_frame_error(error: &FrameError, id: Option<RequestId>) -> Self {
        ServerFrame::Error {
            id,
            chat: None,
            code: error.code(),
            message: error.to_string(),
            retry_after_ms: None,
        }
    }

    /// The JSON text of this frame. Serialising these types cannot fail.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error","code":"internal"}"#.to_owned())
    }
}

/// WebSocket close codes, grouped by what the client should do next.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// A text frame was not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame was over the size limit (after an `error` frame `frame_too_large`).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The node is restarting or draining: reconnect now (to any node) and resume.
    pub const SERVICE_RESTART: u16 = 1012;
    /// 4000–4099: do not reconnect without changing something.
    /// The token expired or its secret was rotated: get a new token first.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// 4100–4199: reconnect after a backoff.
    /// The client flooded the server with bad or too many frames.
    pub const FLOODING: u16 = 4100;
    /// The node is at its connection limit.
    pub const TOO_MANY_CONNECTIONS: u16 = 4101;
    /// The user, or the user's application, holds as many sessions on the node as it allows.
    pub const TOO_MANY_SESSIONS: u16 = 4102;
    /// 4200–4299: reconnect now and resync with `hello`.
    /// The client read too slowly and its outbox overflowed.
    pub const SLOW_CONSUMER: u16 = 4200;
    /// No pong within the idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4201;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (&'static str, Option<RequestId>) {
        let (e, id) = decode(text).unwrap_err();
        (e.code(), id)
    }

    #[test]
    fn every_client_frame_decodes() {
        let send = decode(r#"{"type":"send","id":7,"chat":3,"body":"hi","client_msg_id":"c1"}"#).unwrap();
        assert!(matches!(
            send,
            ClientFrame::Send { id: Some(RequestId::Number(7)), chat: Some(ChatNumber(3)), .. }
        ));
        let implicit =
            decode(r#"{"type":"send","id":"a","body":"hi","client_msg_id":"c2","recipients":["bob"]}"#);
        assert!(matches!(implicit, Ok(ClientFrame::Send { recipients: Some(_), chat: None, .. })));
        let sync = decode(r#"{"type":"sync","chat":1,"after":10,"limit":50}"#).unwrap();
        assert_eq!(
            sync,
            ClientFrame::Sync(SyncRequest {
                id: None,
                chat: ChatNumber(1),
                from: SyncFrom::After(MessageNumber(10)),
                limit: 50
            })
        );
        let hello =
            decode(r#"{"type":"hello","resume":[{"chat":1,"after":0},{"chat":2,"after":5}]}"#).unwrap();
        assert!(matches!(hello, ClientFrame::Hello { resume, .. } if resume.len() == 2));
        assert_eq!(
            decode(r#"{"type":"typing","chat":4}"#).unwrap(),
            ClientFrame::Typing { id: None, chat: ChatNumber(4) }
        );
        assert!(decode(r#"{"type":"delivered","chat":4,"seq":9}"#).is_ok());
        assert!(decode(r#"{"type":"read","chat":4,"seq":9}"#).is_ok());
    }

    #[test]
    fn bad_frames_get_precise_codes_and_keep_their_id() {
        assert_eq!(err("{nope"), ("malformed_json", None));
        assert_eq!(err("[1,2]"), ("invalid_frame", None));
        assert_eq!(err(r#"{"id":1}"#), ("invalid_frame", Some(RequestId::Number(1))));
        assert_eq!(err(r#"{"type":"dance","id":"x"}"#), ("unknown_type", Some(RequestId::Text("x".into()))));
        assert_eq!(err(r#"{"type":5}"#).0, "invalid_frame");
        // Missing, wrongly typed and unknown fields.
        assert_eq!(
            err(r#"{"type":"send","id":2,"chat":1,"body":"x"}"#),
            ("invalid_frame", Some(RequestId::Number(2)))
        );
        assert_eq!(err(r#"{"type":"send","chat":"one","body":"x","client_msg_id":"c"}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"typing","chat":1,"extra":true}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"sync","chat":-1,"after":0}"#).0, "invalid_frame");
        // Rules beyond types.
        assert_eq!(err(r#"{"type":"send","chat":1,"body":"  ","client_msg_id":"c"}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"send","chat":1,"body":"x","client_msg_id":""}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"send","body":"x","client_msg_id":"c"}"#).0, "invalid_frame");
        assert_eq!(
            err(r#"{"type":"send","chat":1,"recipients":["a"],"body":"x","client_msg_id":"c"}"#).0,
            "invalid_frame"
        );
        assert_eq!(
            err(r#"{"type":"send","recipients":[],"body":"x","client_msg_id":"c"}"#).0,
            "invalid_frame"
        );
        assert_eq!(
            err(r#"{"type":"send","recipients":["a b"],"body":"x","client_msg_id":"c"}"#).0,
            "invalid_frame"
        );
        assert_eq!(err(r#"{"type":"sync","chat":1,"after":0,"limit":0}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"sync","chat":1,"after":0,"limit":501}"#).0, "invalid_frame");
        let long_id = format!(r#"{{"type":"sync","id":"{}","chat":1,"after":0}}"#, "i".repeat(65));
        assert_eq!(err(&long_id).0, "invalid_frame");
    }

    #[test]
    fn sync_reads_forward_or_backward_from_exactly_one_place() {
        let sync = |text: &str| match decode(text) {
            Ok(ClientFrame::Sync(request)) => (request.from, request.limit),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(sync(r#"{"type":"sync","chat":1,"after":0}"#), (SyncFrom::After(MessageNumber(0)), 100));
        assert_eq!(
            sync(r#"{"type":"sync","chat":1,"before":120,"limit":50}"#),
            (SyncFrom::Before(MessageNumber(120)), 50)
        );
        assert_eq!(sync(r#"{"type":"sync","chat":1,"latest":true,"limit":500}"#), (SyncFrom::Latest, 500));
        let refused = [
            r#"{"type":"sync","id":"s","chat":1}"#,
            r#"{"type":"sync","id":"s","chat":1,"after":3,"before":9}"#,
            r#"{"type":"sync","id":"s","chat":1,"after":3,"latest":true}"#,
            r#"{"type":"sync","id":"s","chat":1,"before":9,"latest":true}"#,
            r#"{"type":"sync","id":"s","chat":1,"latest":false}"#,
            r#"{"type":"sync","id":"s","chat":1,"before":0}"#,
            r#"{"type":"sync","id":"s","chat":1,"before":-1}"#,
            r#"{"type":"sync","id":"s","chat":1,"latest":true,"limit":0}"#,
            r#"{"type":"sync","id":"s","chat":1,"before":9,"limit":501}"#,
            r#"{"type":"sync","id":"s","chat":1,"before":9,"newest":true}"#,
        ];
        for text in refused {
            assert_eq!(err(text), ("invalid_frame", Some(RequestId::Text("s".into()))), "{text}");
        }
        let (e, _) = decode(r#"{"type":"sync","chat":1,"after":3,"before":9}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `sync` frame: give exactly one of `after`, `before` and `latest: true`"
        );
    }

    #[test]
    fn a_catch_up_frame_says_when_it_ends_its_chat_and_a_hello_error_names_the_chat() {
        let last = ServerFrame::CatchUp {
            id: Some(RequestId::Text("h".into())),
            chat: ChatNumber(3),
            items: Vec::new(),
            has_more: true,
            done: true,
        };
        assert_eq!(
            (last.to_text().as_str(), last.kind()),
            (r#"{"type":"messages","id":"h","chat":3,"items":[],"has_more":true,"done":true}"#, "messages")
        );
        let error = ServerFrame::Error {
            id: Some(RequestId::Text("h".into())),
            chat: Some(ChatNumber(9)),
            code: "not_a_member",
            message: "you are not a member of this chat".into(),
            retry_after_ms: None,
        };
        assert_eq!(
            error.to_text(),
            r#"{"type":"error","id":"h","chat":9,"code":"not_a_member","message":"you are not a member of this chat"}"#
        );
    }

    #[test]
    fn group_frames_decode_and_their_rules_hold() {
        let add = decode(r#"{"type":"add_members","id":1,"chat":3,"users":["carol","dave"]}"#).unwrap();
        assert!(matches!(add, ClientFrame::AddMembers { users, .. } if users.len() == 2));
        let remove = decode(r#"{"type":"remove_member","chat":3,"user":"dave"}"#).unwrap();
        assert_eq!(remove, ClientFrame::RemoveMember { id: None, chat: ChatNumber(3), user: "dave".into() });
        assert!(decode(r#"{"type":"set_role","chat":3,"user":"carol","role":"admin"}"#).is_ok());
        assert!(decode(r#"{"type":"leave","chat":3}"#).is_ok());
        assert!(decode(r#"{"type":"leave","chat":3,"successor":"carol"}"#).is_ok());
        // Absent, null and a value are three different things in `update_chat`.
        let update = decode(r#"{"type":"update_chat","chat":3,"name":null,"metadata":{"a":1}}"#).unwrap();
        let ClientFrame::UpdateChat { name, description, metadata, .. } = update else {
            panic!("{update:?}")
        };
        assert_eq!((name, description), (Some(None), None));
        assert_eq!(metadata, Some(Some(serde_json::json!({"a":1}))));

        assert_eq!(
            err(r#"{"type":"add_members","id":2,"chat":3,"users":[]}"#),
            ("invalid_frame", Some(RequestId::Number(2)))
        );
        let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        let many = serde_json::json!({"type":"add_members","chat":3,"users":many}).to_string();
        assert_eq!(err(&many).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"add_members","chat":3,"users":["a b"]}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"remove_member","chat":3,"user":""}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"set_role","chat":3,"user":"carol","role":"king"}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"leave","chat":3,"successor":"a b"}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"update_chat","chat":3}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"update_chat","chat":3,"metadata":"x"}"#).0, "invalid_frame");
        assert_eq!(err(r#"{"type":"update_chat","chat":3,"name":5}"#).0, "invalid_frame");
    }

    #[test]
    fn group_events_encode_as_documented() {
        let ack = ServerFrame::GroupAck { id: Some(RequestId::Number(12)), chat: ChatNumber(3) };
        assert_eq!((ack.to_text().as_str(), ack.kind()), (r#"{"type":"ack","id":12,"chat":3}"#, "ack"));
        let carol = UserId::parse("carol").unwrap();
        let joined = ServerFrame::MemberJoined { chat: ChatNumber(3), user: carol.clone(), role: "member" };
        assert_eq!(joined.to_text(), r#"{"type":"member_joined","chat":3,"user":"carol","role":"member"}"#);
        let left = ServerFrame::MemberLeft { chat: ChatNumber(3), user: carol.clone() };
        assert_eq!(left.to_text(), r#"{"type":"member_left","chat":3,"user":"carol"}"#);
        let role = ServerFrame::RoleChanged { chat: ChatNumber(3), user: carol.clone(), role: "admin" };
        assert_eq!(role.to_text(), r#"{"type":"role_changed","chat":3,"user":"carol","role":"admin"}"#);
        let updated = ServerFrame::ChatUpdated(ChatOut {
            chat: ChatNumber(3),
            kind: "group",
            name: Some("Launch".into()),
            description: None,
            metadata: serde_json::json!({"topic":"go"}).as_object().unwrap().clone(),
            created_by: Some(carol),
            updated_at: Timestamp(0),
        });
        assert_eq!(
            updated.to_text(),
            r#"{"type":"chat_updated","chat":3,"kind":"group","name":"Launch","description":null,"metadata":{"topic":"go"},"created_by":"carol","updated_at":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn server_frames_encode_as_documented() {
        let ack =
            ServerFrame::Ack { id: Some(RequestId::Number(7)), chat: ChatNumber(3), seq: MessageNumber(42) };
        assert_eq!(ack.to_text(), r#"{"type":"ack","id":7,"chat":3,"seq":42}"#);
        let message = ServerFrame::Message(MessageOut {
            chat: ChatNumber(3),
            seq: MessageNumber(42),
            sender: Some(UserId::parse("alice").unwrap()),
            body: Some("hi".into()),
            sent_at: Timestamp(0),
            client_msg_id: Some("c1".into()),
            reply_to: None,
            edited_at: None,
            deleted: false,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments: Vec::new(),
            reactions: BTreeMap::new(),
            mentions: Vec::new(),
        });
        assert_eq!(
            message.to_text(),
            r#"{"type":"message","chat":3,"seq":42,"sender":"alice","body":"hi","sent_at":"1970-01-01T00:00:00Z","client_msg_id":"c1","reply_to":null}"#
        );
        let tombstone = ServerFrame::Message(MessageOut {
            chat: ChatNumber(3),
            seq: MessageNumber(42),
            sender: None,
            body: None,
            sent_at: Timestamp(0),
            client_msg_id: None,
            reply_to: None,
            edited_at: Some(Timestamp(1_000)),
            deleted: true,
            deleted_at: Some(Timestamp(2_000)),
            reply_count: 2,
            last_reply_at: Some(Timestamp(1_500)),
            attachments: Vec::new(),
            reactions: BTreeMap::new(),
            mentions: Vec::new(),
        });
        assert_eq!(
            tombstone.to_text(),
            r#"{"type":"message","chat":3,"seq":42,"sender":null,"body":null,"sent_at":"1970-01-01T00:00:00Z","client_msg_id":null,"reply_to":null,"edited_at":"1970-01-01T00:00:01Z","deleted":true,"deleted_at":"1970-01-01T00:00:02Z","reply_count":2,"last_reply_at":"1970-01-01T00:00:01.5Z"}"#
        );
        let reacted = ServerFrame::Message(MessageOut {
            chat: ChatNumber(3),
            seq: MessageNumber(42),
            sender: None,
            body: Some("hi".into()),
            sent_at: Timestamp(0),
            client_msg_id: None,
            reply_to: None,
            edited_at: None,
            deleted: false,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments: Vec::new(),
            reactions: BTreeMap::from([("👍".to_owned(), ReactionOut { count: 3, me: true })]),
            mentions: Vec::new(),
        });
        assert_eq!(
            reacted.to_text(),
            r#"{"type":"message","chat":3,"seq":42,"sender":null,"body":"hi","sent_at":"1970-01-01T00:00:00Z","client_msg_id":null,"reply_to":null,"reactions":{"👍":{"count":3,"me":true}}}"#
        );
        let event = ServerFrame::Reaction {
            chat: ChatNumber(3),
            seq: MessageNumber(42),
            user: UserId::parse("bob").unwrap(),
            emoji: "🎉".into(),
            op: ReactionOp::Remove,
            count: 0,
        };
        assert_eq!(
            event.to_text(),
            r#"{"type":"reaction","chat":3,"seq":42,"user":"bob","emoji":"🎉","op":"remove","count":0}"#
        );
        let error = ServerFrame::from_frame_error(&FrameError::UnknownType("x".into()), None);
        assert_eq!(
            error.to_text(),
            r#"{"type":"error","code":"unknown_type","message":"unknown frame type `x`"}"#
        );
        let receipt = ServerFrame::Receipt {
            chat: ChatNumber(1),
            user: UserId::parse("bob").unwrap(),
            kind: ReceiptKind::Read,
            seq: MessageNumber(5),
        };
        assert_eq!(receipt.to_text(), r#"{"type":"receipt","chat":1,"user":"bob","kind":"read","seq":5}"#);
    }
}
