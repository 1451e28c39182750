//! The records weft keeps: applications, chats, messages and memberships.
//!
//! These are plain data shared by the domain (`chat`), the stores and the API
//! mappers; none of them knows how it is stored or shown.

use std::collections::{BTreeMap, BTreeSet};

use crate::auth::SigningSecret;
use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};

/// Most recipients one `send` may name.
pub const MAX_RECIPIENTS: usize = 100;

/// A tenant: everything else lives inside one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    /// Internal id; partitions the application's data.
    pub id: AppId,
    /// The secret that names the application in the REST API.
    pub token: AppToken,
    /// Display name chosen by the owner.
    pub name: String,
    /// Signs the application's user tokens (HS256).
    pub secret: SigningSecret,
    /// Where the application's identity provider publishes its keys, when it
    /// signs user tokens itself (RS256/ES256).
    pub jwks_url: Option<String>,
    /// Who may put users into new groups.
    pub user_groups: UserGroups,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its name or secret last changed.
    pub updated_at: Timestamp,
    /// What the application is, for its owner (at most [`MAX_DESCRIPTION`] characters).
    pub description: Option<String>,
    /// The owner's own data (a JSON object of at most [`MAX_METADATA_BYTES`]).
    pub metadata: Metadata,
}

/// Longest chat name, in characters.
pub const MAX_CHAT_NAME: usize = 200;
/// Longest description of a chat or an application, in characters.
pub const MAX_DESCRIPTION: usize = 2_000;
/// Largest `metadata` object, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 4_096;

/// A JSON object an application keeps on a chat or on itself (empty: none).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Who may put users into new groups: being added to a group needs no consent
/// (as in most chat products), so an application can keep group creation to its
/// backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserGroups {
    /// A user's `send` to several `recipients` creates a group of them (the default).
    #[default]
    Open,
    /// Only the backend creates groups and adds members (REST); users may still
    /// open direct chats.
    BackendOnly,
}

impl UserGroups {
    /// The name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            UserGroups::Open => "open",
            UserGroups::BackendOnly => "backend_only",
        }
    }

    /// Reads a name; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "open" => Some(UserGroups::Open),
            "backend_only" => Some(UserGroups::BackendOnly),
            _ => None,
        }
    }
}

/// What kind of chat this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKind {
    /// A group of any number of members (also what REST creates).
    Group,
    /// The one chat of a pair of users.
    Direct,
}

impl ChatKind {
    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Group => "group",
            ChatKind::Direct => "direct",
        }
    }

    /// Parses a stored name; unknown names read as `Group`.
    pub fn from_stored(raw: &str) -> Self {
        if raw == "direct" { ChatKind::Direct } else { ChatKind::Group }
    }
}

/// A chat of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    /// The application it belongs to.
    pub app: AppId,
    /// Its number inside the application.
    pub number: ChatNumber,
    /// Group or direct.
    pub kind: ChatKind,
    /// Its display name, if any (at most [`MAX_CHAT_NAME`] characters).
    pub name: Option<String>,
    /// What it is about (at most [`MAX_DESCRIPTION`] characters).
    pub description: Option<String>,
    /// The application's own data (a JSON object of at most [`MAX_METADATA_BYTES`]).
    pub metadata: Metadata,
    /// Who created it, when a user did (its first owner).
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its name, description or metadata last changed (its creation before).
    pub updated_at: Timestamp,
}

impl Chat {
    /// A chat with no name, description, metadata or creator.
    pub fn new(app: AppId, number: ChatNumber, kind: ChatKind, created_at: Timestamp) -> Self {
        Self {
            app,
            number,
            kind,
            name: None,
            description: None,
            metadata: Metadata::new(),
            created_by: None,
            created_at,
            updated_at: created_at,
        }
    }
}

/// What a member may do in a group (a direct chat has no roles: both read as `Member`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sends and reads (the default; members stored without a role read as this).
    #[default]
    Member,
    /// Also adds and removes members and edits the chat.
    Admin,
    /// Also makes and unmakes admins and owners.
    Owner,
}

impl Role {
    /// The name in the API and the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Reads a name; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Whether the role manages members and the chat's info (admin or owner).
    pub fn manages(self) -> bool {
        self >= Role::Admin
    }
}

/// A message of a chat, as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The application it belongs to.
    pub app: AppId,
    /// The chat it was sent to.
    pub chat: ChatNumber,
    /// Its number inside the chat.
    pub number: MessageNumber,
    /// The text.
    pub body: String,
    /// Who sent it, when known.
    pub sender: Option<UserId>,
    /// The sender's idempotency key, when given.
    pub client_msg_id: Option<String>,
    /// The message this one answers, when any.
    pub reply_to: Option<MessageNumber>,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When its body was last edited, if ever.
    pub edited_at: Option<Timestamp>,
    /// When it was deleted, if it was: a tombstone keeps the number, its body is gone (empty).
    pub deleted_at: Option<Timestamp>,
    /// Replies to it (messages whose `reply_to` names it).
    pub reply_count: u64,
    /// When its newest reply was sent, if any.
    pub last_reply_at: Option<Timestamp>,
    /// The files attached to it, in the order the sender named them.
    pub attachments: Vec<AttachedFile>,
    /// Who reacted with what (none on a tombstone).
    pub reactions: Reactions,
}

impl Message {
    /// Whether this is the tombstone of a deleted message.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// A file attached to a message, as the message keeps it: enough to show it
/// without reading the attachment's record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttachedFile {
    /// The attachment.
    pub id: AttachmentId,
    /// The file name the uploader gave.
    pub name: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// A time-limited download URL: filled in on the way out to a client,
    /// never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An attachment's record: made when an upload is granted, attached to one
/// message by a send that names it, gone with that message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The application it belongs to.
    pub app: AppId,
    /// Its id.
    pub id: AttachmentId,
    /// The chat it may be sent to.
    pub chat: ChatNumber,
    /// The file name the uploader gave.
    pub name: String,
    /// Its declared media type.
    pub content_type: String,
    /// Its declared size in bytes: the object must have exactly this size.
    pub size: u64,
    /// The user who asked for the upload (`None`: the backend).
    pub created_by: Option<UserId>,
    /// When the upload was granted.
    pub created_at: Timestamp,
    /// The message it is attached to, once a send named it.
    pub message: Option<MessageNumber>,
}

impl Attachment {
    /// What a message keeps of it.
    pub fn file(&self) -> AttachedFile {
        AttachedFile {
            id: self.id.clone(),
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            url: None,
        }
    }
}

/// Most different emoji one message takes.
pub const MAX_REACTION_KINDS: usize = 50;

/// Why `emoji` is not a reaction: 1 to 16 characters (at most 64 bytes), no
/// white space or control characters. An emoji, or a short code such as `:party:`.
pub fn check_emoji(emoji: &str) -> Result<(), &'static str> {
    if emoji.is_empty() || emoji.len() > 64 || emoji.chars().count() > 16 {
        return Err("must be 1 to 16 characters");
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not hold white space or control characters");
    }
    Ok(())
}

/// The reactions on a message: each emoji and the users who reacted with it.
///
/// Kept whole with the message (one set in its row), so a page of messages
/// reads its reactions with it and any reader can tell its own (`me`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reactions(BTreeMap<String, BTreeSet<UserId>>);

/// One emoji's reactions as a reader sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReactionCount {
    /// How many users reacted with it.
    pub count: u64,
    /// Whether the reader is one of them.
    pub me: bool,
}

impl Reactions {
    /// From (emoji, user) pairs, as stored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, UserId)>) -> Self {
        let mut reactions = Self::default();
        for (emoji, user) in pairs {
            reactions.0.entry(emoji).or_default().insert(user);
        }
        reactions
    }

    /// The (emoji, user) pairs, by emoji then user.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &UserId)> {
        self.0.iter().flat_map(|(emoji, users)| users.iter().map(move |u| (emoji.as_str(), u)))
    }

    /// Whether nobody reacted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `user` reacted with `emoji`.
    pub fn has(&self, emoji: &str, user: &UserId) -> bool {
        self.0.get(emoji).is_some_and(|users| users.contains(user))
    }

    /// How many users reacted with `emoji`.
    pub fn count(&self, emoji: &str) -> u64 {
        self.0.get(emoji).map_or(0, |users| users.len() as u64)
    }

    /// How many different emoji there are.
    pub fn kinds(&self) -> usize {
        self.0.len()
    }

    /// Adds (`on`) or takes back `user`'s `emoji`; returns whether that changed anything.
    pub fn set(&mut self, emoji: &str, user: &UserId, on: bool) -> bool {
        if on {
            return self.0.entry(emoji.to_owned()).or_default().insert(user.clone());
        }
        let Some(users) = self.0.get_mut(emoji) else { return false };
        let removed = users.remove(user);
        if users.is_empty() {
            self.0.remove(emoji);
        }
        removed
    }

    /// Each emoji with its users.
    pub fn users(&self) -> impl Iterator<Item = (&str, &BTreeSet<UserId>)> {
        self.0.iter().map(|(emoji, users)| (emoji.as_str(), users))
    }

    /// Each emoji's count, and whether `reader` (if any) is among its users.
    pub fn seen_by(&self, reader: Option<&UserId>) -> BTreeMap<String, ReactionCount> {
        self.0
            .iter()
            .map(|(emoji, users)| {
                let me = reader.is_some_and(|r| users.contains(r));
                (emoji.clone(), ReactionCount { count: users.len() as u64, me })
            })
            .collect()
    }
}

/// An earlier body of an edited message (kept for audit until the message is deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageVersion {
    /// The body as it was.
    pub body: String,
    /// When that body was written (the message's creation, or an earlier edit).
    pub written_at: Timestamp,
    /// When an edit replaced it.
    pub replaced_at: Timestamp,
}

/// What an edit or a delete found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Applied: the message as it is now.
    Done(Message),
    /// No such message.
    Missing,
    /// The message was deleted before (a tombstone): nothing changed.
    Deleted(Message),
}

/// A user's membership of a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member.
    pub user: UserId,
    /// When the user joined.
    pub joined_at: Timestamp,
    /// What the member may do.
    pub role: Role,
}

/// A page of a list: `skip` rows, then at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip before the page.
    pub skip: usize,
    /// Rows in the page at most.
    pub limit: usize,
}

/// Which messages of a chat to list, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRange {
    /// Only numbers strictly below this one.
    pub before: Option<MessageNumber>,
    /// Only numbers strictly above this one.
    pub after: Option<MessageNumber>,
    /// Paging inside the range.
    pub page: Page,
}

impl MessageRange {
    /// The `size` numbers after `from` (`from + 1 ..= from + size`), whatever
    /// of them is stored: a window for walking a chat in number order.
    pub fn window(from: u64, size: u64) -> Self {
        Self {
            after: Some(MessageNumber(from)),
            before: Some(MessageNumber(from.saturating_add(size).saturating_add(1))),
            page: Page { skip: 0, limit: usize::try_from(size).unwrap_or(usize::MAX) },
        }
    }
}

/// The two users of a direct chat, in order, so that either side names the same pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirectPair {
    low: UserId,
    high: UserId,
}

impl DirectPair {
    /// The pair of two different users; `None` when they are the same.
    pub fn new(a: UserId, b: UserId) -> Option<Self> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Some(Self { low: a, high: b }),
            std::cmp::Ordering::Greater => Some(Self { low: b, high: a }),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// Both users, the lower id first.
    pub fn users(&self) -> [&UserId; 2] {
        [&self.low, &self.high]
    }
}

/// Which position a receipt moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    /// Messages reached one of the user's devices.
    Delivered,
    /// Messages were read (which implies delivered).
    Read,
}

/// How far a member of a chat has received and read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The member.
    pub user: UserId,
    /// The newest message delivered to one of the user's devices (0: none).
    pub delivered: MessageNumber,
    /// The newest message read (0: none).
    pub read: MessageNumber,
}

/// What a webhook can be told of (`type` in its body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// A message was persisted.
    MessageCreated,
    /// A message's body was edited.
    MessageEdited,
    /// A message was deleted.
    MessageDeleted,
    /// A chat was created.
    ChatCreated,
    /// A chat's name, description or metadata changed.
    ChatUpdated,
    /// A user became a member of a chat.
    MemberAdded,
    /// A user left a chat or was removed.
    MemberRemoved,
    /// A WebSocket session of a user opened (on any node).
    UserConnected,
    /// A WebSocket session of a user closed.
    UserDisconnected,
    /// A user who had no session anywhere opened one.
    UserOnline,
    /// A user's last session closed (after the offline debounce).
    UserOffline,
    /// A member's read position in a chat moved.
    ReceiptRead,
}

impl EventType {
    /// Every type, in the order the API documents them.
    pub const ALL: [EventType; 12] = [
        EventType::MessageCreated,
        EventType::MessageEdited,
        EventType::MessageDeleted,
        EventType::ChatCreated,
        EventType::ChatUpdated,
        EventType::MemberAdded,
        EventType::MemberRemoved,
        EventType::UserConnected,
        EventType::UserDisconnected,
        EventType::UserOnline,
        EventType::UserOffline,
        EventType::ReceiptRead,
    ];

    /// The wire name, e.g. `message.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageCreated => "message.created",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::ChatCreated => "chat.created",
            EventType::ChatUpdated => "chat.updated",
            EventType::MemberAdded => "member.added",
            EventType::MemberRemoved => "member.removed",
            EventType::UserConnected => "user.connected",
            EventType::UserDisconnected => "user.disconnected",
            EventType::UserOnline => "user.online",
            EventType::UserOffline => "user.offline",
            EventType::ReceiptRead => "receipt.read",
        }
    }

    /// The type a wire name names.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Most webhooks one application may have.
pub const MAX_WEBHOOKS: usize = 20;

/// An endpoint of an application that is told of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// The application.
    pub app: AppId,
    /// Its id.
    pub id: WebhookId,
    /// Where events are POSTed.
    pub url: String,
    /// The events it is told of (no duplicates, in [`EventType::ALL`] order).
    pub events: Vec<EventType>,
    /// The key of the `Weft-Signature` HMAC.
    pub secret: String,
    /// The key before the last rotation, still signed with until `previous_until`.
    pub previous_secret: Option<String>,
    /// When `previous_secret` stops being used.
    pub previous_until: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When weft stopped delivering to it (it kept failing), if it did.
    pub disabled_at: Option<Timestamp>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
}

/// Who delivers a device's push notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PushProvider {
    /// Firebase Cloud Messaging (Android, iOS through Firebase, web through Firebase).
    Fcm,
    /// Apple Push Notification service, directly.
    Apns,
    /// Web Push (RFC 8030/8291, VAPID), a browser's push service.
    WebPush,
}

impl PushProvider {
    /// The wire name: `fcm`, `apns`, `webpush`.
    pub fn as_str(self) -> &'static str {
        match self {
            PushProvider::Fcm => "fcm",
            PushProvider::Apns => "apns",
            PushProvider::WebPush => "webpush",
        }
    }

    /// The provider a wire name names.
    pub fn parse(name: &str) -> Option<PushProvider> {
        [PushProvider::Fcm, PushProvider::Apns, PushProvider::WebPush]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// Most devices one user may register (the oldest is replaced past it).
pub const MAX_DEVICES: usize = 20;

/// A device of a user that receives push notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The application.
    pub app: AppId,
    /// Whose.
    pub user: UserId,
    /// Its id, chosen by the client.
    pub id: DeviceId,
    /// Who delivers to it.
    pub provider: PushProvider,
    /// The provider's token: an FCM registration token, an APNs device token
    /// (hex), or a Web Push subscription as JSON (`{"endpoint","keys":{"p256dh","auth"}}`).
    pub token: String,
    /// When it was first registered.
    pub created_at: Timestamp,
    /// When its token was last set.
    pub updated_at: Timestamp,
}

/// How much of one chat notifies a user who is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChatLevel {
    /// Every message.
    All,
    /// Only messages that mention the user (`@user`).
    Mentions,
    /// Nothing: the chat is muted.
    None,
}

impl ChatLevel {
    /// The wire name: `all`, `mentions`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatLevel::All => "all",
            ChatLevel::Mentions => "mentions",
            ChatLevel::None => "none",
        }
    }

    /// The level a wire name names.
    pub fn parse(name: &str) -> Option<ChatLevel> {
        [ChatLevel::All, ChatLevel::Mentions, ChatLevel::None].into_iter().find(|l| l.as_str() == name)
    }
}

/// Hours of a day during which a user gets no push notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, `HH:MM` (24 h) in `tz`.
    pub from: String,
    /// End, `HH:MM` in `tz`; before `from` when the quiet spans midnight.
    pub to: String,
    /// An IANA time zone, e.g. `Europe/Paris`.
    pub tz: String,
}

/// Most chats one user's settings name.
pub const MAX_CHAT_SETTINGS: usize = 1000;

/// How a user wants to be notified while away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationSettings {
    /// The application.
    pub app: AppId,
    /// Whose.
    pub user: UserId,
    /// Unread digests by email (needs `email_address`).
    pub email: bool,
    /// Where the digests go.
    pub email_address: Option<String>,
    /// Push notifications to the user's devices.
    pub push: bool,
    /// Per chat: every message, mentions only, or nothing (a chat not named: every message).
    pub chats: BTreeMap<ChatNumber, ChatLevel>,
    /// When pushes are held back.
    pub quiet_hours: Option<QuietHours>,
    /// When they were last changed.
    pub updated_at: Timestamp,
}

impl NotificationSettings {
    /// What a user who never chose gets: push on, email off, every chat.
    pub fn default_for(app: &AppId, user: &UserId) -> Self {
        Self {
            app: app.clone(),
            user: user.clone(),
            email: false,
            email_address: None,
            push: true,
            chats: BTreeMap::new(),
            quiet_hours: None,
            updated_at: Timestamp(0),
        }
    }

    /// The level of `chat` (every message unless named).
    pub fn level(&self, chat: ChatNumber) -> ChatLevel {
        self.chats.get(&chat).copied().unwrap_or(ChatLevel::All)
    }
}

/// Most users one message mentions (more `@names` are left out).
pub const MAX_MENTIONS: usize = 50;

/// The users a body mentions: every `@user_id` that starts the body or
/// follows a character that cannot be part of a user id (so an email
/// address `a@b.c` mentions nobody), in order of first appearance, once
/// each. Derived from the body wherever a message is shown, so an edit
/// changes them and a deleted message has none.
pub fn mentions(body: &str) -> Vec<UserId> {
    let id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | ':' | '-');
    let mut found: Vec<UserId> = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in body.char_indices() {
        if c == '@' && !prev.is_some_and(id_char) {
            let rest = &body[i + 1..];
            let end = rest.find(|c: char| !id_char(c) || c == '@').unwrap_or(rest.len());
            // A sentence's full stop or colon after a name is not part of it.
            let name = rest[..end].trim_end_matches(['.', ':', '-']);
            if let Ok(user) = UserId::parse(name)
                && !found.contains(&user)
            {
                found.push(user);
                if found.len() == MAX_MENTIONS {
                    break;
                }
            }
        }
        prev = Some(c);
    }
    found
}

#[cfg(test)]
mod mention_tests {
    use super::*;

    fn names(body: &str) -> Vec<String> {
        mentions(body).into_iter().map(|u| u.as_str().to_owned()).collect()
    }

    #[test]
    fn mentions_are_the_at_names_of_a_body() {
        assert_eq!(names("@alice hi @bob.smith, and @alice again"), ["alice", "bob.smith"]);
        assert_eq!(names("ask @carol: now. Or @dave."), ["carol", "dave"]);
        assert_eq!(names("mail me at erin@example.com"), Vec::<String>::new());
        assert_eq!(names("(@frank) and \"@gina\""), ["frank", "gina"]);
        assert!(names("@ alone, @@double, @").is_empty());
        assert_eq!(names(&"@u ".repeat(10)), ["u"]);
        let many: String = (0..80).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mentions(&many).len(), MAX_MENTIONS);
    }
}
