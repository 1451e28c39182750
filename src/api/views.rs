//! What the REST API shows: bare objects, no internal ids.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::chat::{ApplicationView, ChatView};
use crate::ids::{ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{AttachedFile, Member, Message, MessageVersion, Metadata, ReadState};
use crate::protocol::ReactionOut;

/// An application as shown to its owner.
#[derive(Serialize, ToSchema)]
pub struct ApplicationOut {
    /// The public id (user tokens name it in `app`).
    id: String,
    name: String,
    /// The secret token that names the application in paths.
    token: String,
    /// Where its identity provider publishes the keys that sign user tokens.
    #[schema(required = true)]
    jwks_url: Option<String>,
    /// `open` or `backend_only`.
    #[schema(example = "open")]
    user_groups: &'static str,
    #[schema(required = true)]
    description: Option<String>,
    /// A JSON object the application keeps (empty: none).
    #[schema(value_type = Object)]
    metadata: Metadata,
    chats_count: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<ApplicationView> for ApplicationOut {
    fn from(v: ApplicationView) -> Self {
        Self {
            id: v.app.id.as_str().to_owned(),
            name: v.app.name,
            token: v.app.token.as_str().to_owned(),
            jwks_url: v.app.jwks_url,
            user_groups: v.app.user_groups.as_str(),
            description: v.app.description,
            metadata: v.app.metadata,
            chats_count: v.chats_count,
            created_at: v.app.created_at,
            updated_at: v.app.updated_at,
        }
    }
}

/// A new application: the only answer that shows its signing secret (besides rotation).
#[derive(Serialize, ToSchema)]
pub struct CreatedApplicationOut {
    #[serde(flatten)]
    application: ApplicationOut,
    /// The signing secret for user tokens (HS256): shown here and on rotation only.
    secret: String,
}

impl From<ApplicationView> for CreatedApplicationOut {
    fn from(v: ApplicationView) -> Self {
        let secret = v.app.secret.expose().to_owned();
        Self { application: v.into(), secret }
    }
}

/// A chat.
#[derive(Serialize, ToSchema)]
pub struct ChatOut {
    number: ChatNumber,
    /// `group` or `direct`.
    #[schema(example = "group")]
    kind: &'static str,
    #[schema(required = true)]
    name: Option<String>,
    #[schema(required = true)]
    description: Option<String>,
    /// A JSON object the application keeps (empty: none).
    #[schema(value_type = Object)]
    metadata: Metadata,
    #[schema(required = true)]
    created_by: Option<UserId>,
    messages_count: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<ChatView> for ChatOut {
    fn from(v: ChatView) -> Self {
        Self {
            number: v.chat.number,
            kind: v.chat.kind.as_str(),
            name: v.chat.name,
            description: v.chat.description,
            metadata: v.chat.metadata,
            created_by: v.chat.created_by,
            messages_count: v.messages_count,
            created_at: v.chat.created_at,
            updated_at: v.chat.updated_at,
        }
    }
}

/// A message.
#[derive(Serialize, ToSchema)]
pub struct MessageOut {
    number: MessageNumber,
    /// Null once deleted.
    #[schema(required = true)]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<MessageNumber>,
    created_at: Timestamp,
    /// The last change: creation, edit or delete.
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "crate::ids::is_zero")]
    reply_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_reply_at: Option<Timestamp>,
    /// Each with a time-limited `url`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<AttachedFile>,
    /// Each emoji's count, and `me`: whether the reader (`?user=`) reacted with it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    reactions: BTreeMap<String, ReactionOut>,
    /// The users the body mentions (`@user`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<UserId>,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        Self::seen_by(m, None)
    }
}

impl MessageOut {
    /// `m` as `reader` sees it: `me` in its reactions is the reader's.
    pub fn seen_by(m: Message, reader: Option<&UserId>) -> Self {
        let deleted = m.is_deleted();
        let reactions = ReactionOut::of(&m.reactions, reader);
        Self {
            number: m.number,
            mentions: if deleted { Vec::new() } else { crate::model::mentions(&m.body) },
            body: (!deleted).then_some(m.body),
            sender: m.sender,
            reply_to: m.reply_to,
            created_at: m.created_at,
            updated_at: m.deleted_at.or(m.edited_at).unwrap_or(m.created_at),
            edited_at: m.edited_at,
            deleted,
            deleted_at: m.deleted_at,
            reply_count: m.reply_count,
            last_reply_at: m.last_reply_at,
            attachments: if deleted { Vec::new() } else { m.attachments },
            reactions,
        }
    }
}

/// Who reacted to a message with what: emoji → user ids.
pub type ReactionsOut = BTreeMap<String, Vec<UserId>>;

/// The reactions of a message, every user named (the backend's view).
pub fn reactions_out(m: &Message) -> ReactionsOut {
    m.reactions.users().map(|(emoji, users)| (emoji.to_owned(), users.iter().cloned().collect())).collect()
}

/// An earlier body of an edited message.
#[derive(Serialize, ToSchema)]
pub struct VersionOut {
    body: String,
    written_at: Timestamp,
    replaced_at: Timestamp,
}

impl From<MessageVersion> for VersionOut {
    fn from(v: MessageVersion) -> Self {
        Self { body: v.body, written_at: v.written_at, replaced_at: v.replaced_at }
    }
}

/// A chat member.
#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    user_id: UserId,
    /// `owner`, `admin` or `member`.
    #[schema(example = "member")]
    role: &'static str,
    joined_at: Timestamp,
}

impl From<Member> for MemberOut {
    fn from(m: Member) -> Self {
        Self { user_id: m.user, role: m.role.as_str(), joined_at: m.joined_at }
    }
}

/// A member's receipt positions.
#[derive(Serialize, ToSchema)]
pub struct ReadStateOut {
    user_id: UserId,
    /// The newest message delivered to one of the member's devices (0: none).
    #[schema(value_type = u64)]
    delivered: MessageNumber,
    /// The newest message the member read (0: none).
    #[schema(value_type = u64)]
    read: MessageNumber,
}

impl From<ReadState> for ReadStateOut {
    fn from(r: ReadState) -> Self {
        Self { user_id: r.user, delivered: r.delivered, read: r.read }
    }
}

/// A user's presence on this node.
#[derive(Serialize, ToSchema)]
pub struct PresenceOut {
    /// The user.
    pub user_id: UserId,
    /// Has a live session.
    pub online: bool,
    /// Live sessions.
    pub sessions: usize,
    /// When the last session closed, while offline.
    #[schema(required = true)]
    pub last_seen: Option<Timestamp>,
}
