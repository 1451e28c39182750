//! The seam between the domain and the transport: what is delivered, to whom.

use super::SessionId;
use crate::cache::members::Members;
use crate::ids::{AppId, ChatNumber, MessageNumber, UserId};
use crate::model::{Chat, Message, ReceiptKind, Role};

/// Something the live sessions of some users should see.
#[derive(Clone, Debug)]
pub enum Event {
    /// A persisted message.
    Message(Message),
    /// A message was edited or deleted: it as it is now (a tombstone once deleted).
    MessageChanged(Message),
    /// A message got a reply: it, with its new `reply_count` and `last_reply_at`.
    ThreadUpdated(Message),
    /// `user` reacted to message `seq` of `chat` with `emoji` (`on`), or took it back.
    Reaction {
        /// The chat.
        chat: ChatNumber,
        /// The message.
        seq: MessageNumber,
        /// Who.
        user: UserId,
        /// With what.
        emoji: String,
        /// Added (or removed).
        on: bool,
        /// How many users react with `emoji` now.
        count: u64,
    },
    /// A chat's name, description or metadata changed: it as it is now.
    ChatUpdated(Chat),
    /// `user` joined `chat` as `role`.
    MemberJoined {
        /// The chat.
        chat: ChatNumber,
        /// Who joined.
        user: UserId,
        /// As what.
        role: Role,
    },
    /// `user` left `chat` or was removed from it.
    MemberLeft {
        /// The chat.
        chat: ChatNumber,
        /// Who left.
        user: UserId,
    },
    /// `user`'s role in `chat` changed.
    RoleChanged {
        /// The chat.
        chat: ChatNumber,
        /// Whose role.
        user: UserId,
        /// The new role.
        role: Role,
    },
    /// `user` is typing in `chat`.
    Typing {
        /// The chat.
        chat: ChatNumber,
        /// Who types.
        user: UserId,
    },
    /// `user`'s receipt position in `chat` moved.
    Receipt {
        /// The chat.
        chat: ChatNumber,
        /// Whose position.
        user: UserId,
        /// Delivered or read.
        kind: ReceiptKind,
        /// The new position.
        seq: MessageNumber,
    },
    /// `user` came online or went offline.
    Presence {
        /// Who.
        user: UserId,
        /// Online now.
        online: bool,
    },
    /// Live events of `chat` from another node were dropped on the way (its
    /// queue for this node was full): the chat's sessions must sync it.
    Resync {
        /// The chat.
        chat: ChatNumber,
    },
}

/// Who should see an event.
#[derive(Clone, Debug)]
pub enum Audience {
    /// The members of a chat (this node's list of them), but `except_user` if set.
    /// Other nodes resolve the members from the chat themselves.
    Chat {
        /// The chat.
        chat: ChatNumber,
        /// Its members, sorted by user id.
        members: Members,
        /// A member left out (the one typing).
        except_user: Option<UserId>,
    },
    /// These users.
    Users(Vec<UserId>),
    /// These users, each a member of one of `chats` (a presence change's
    /// watchers): routed by the chats' nodes, one Redis command a chat
    /// rather than one a user, and delivered to the users.
    MembersOf {
        /// The chats the users were gathered from.
        chats: Vec<ChatNumber>,
        /// The users, each once.
        users: Vec<UserId>,
    },
}

impl Audience {
    /// The users, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        let (members, except, users): (&[UserId], Option<&UserId>, &[UserId]) = match self {
            Audience::Chat { members, except_user, .. } => (members, except_user.as_ref(), &[]),
            Audience::Users(users) | Audience::MembersOf { users, .. } => (&[], None, users),
        };
        members.iter().filter(move |u| Some(*u) != except).chain(users.iter())
    }
}

/// The seam between the domain and the fabric of nodes: delivering events to
/// the sessions of their audience (this node's hub; other nodes through the
/// cluster transport) and knowing who is online where.
#[async_trait::async_trait]
pub trait Fabric: Send + Sync + 'static {
    /// Delivers `event` to every live session of `audience` in `app` but session `except`.
    async fn deliver(&self, app: &AppId, event: &Event, audience: &Audience, except: Option<SessionId>);

    /// `user` joined (or left) `chat`: caches and routing elsewhere follow.
    async fn members_changed(&self, app: &AppId, chat: ChatNumber, user: &UserId, joined: bool);

    /// A session of `user` (a member of `chats`) opened on this node; true
    /// when the user had no session anywhere before.
    async fn session_opened(&self, app: &AppId, user: &UserId, chats: Vec<ChatNumber>) -> bool;

    /// A session of `user` closed on this node.
    async fn session_closed(&self, app: &AppId, user: &UserId);

    /// Whether `user` has a session on any node.
    async fn is_online(&self, app: &AppId, user: &UserId) -> bool;

    /// Which of `users` have a session on any node (one answer per user, in order).
    async fn online_among(&self, app: &AppId, users: &[UserId]) -> Vec<bool> {
        let mut online = Vec::with_capacity(users.len());
        for user in users {
            online.push(self.is_online(app, user).await);
        }
        online
    }

    /// The credentials of `app`'s sessions were revoked (its secret rotated):
    /// every node closes them (4001) so they reconnect with new tokens.
    async fn revoke(&self, app: &AppId);

    /// Session `auth` of `user` was revoked: every node forgets it and closes
    /// the sockets opened with its tokens (4001).
    async fn close_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId);

    /// Which of `user`'s sessions `auths` have a socket opened with one of
    /// their tokens open on any node (one answer per session, in order).
    async fn auth_sessions_online(
        &self,
        app: &AppId,
        user: &UserId,
        auths: &[crate::auth::AuthSessionId],
    ) -> Vec<bool>;

    /// Whether other nodes may hold sessions: then a draining node still
    /// announces its users offline (they may be watched, and may reconnect,
    /// elsewhere); alone, every watcher closes with it.
    fn spans_nodes(&self) -> bool {
        false
    }
}
