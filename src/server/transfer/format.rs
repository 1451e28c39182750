//! The export format: JSON lines, one record a line, a pure codec.
//!
//! Line 1 is the [`Header`] (format name and version); then the records, each
//! an object with a `type`; the last line is the `end` record, which counts
//! the records before it, so a truncated file is told from a whole one.
//! Times are milliseconds since the Unix epoch, exactly as stored. Ids are
//! checked as the API checks them when a line is read ([`Record::check`]),
//! so a bad file is refused before anything is written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::auth::SigningSecret;
use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use crate::model::{
    self, Application, AttachedFile, Attachment, Chat, ChatKind, ChatLevel, Device, DirectPair, EventType,
    Member, Message, MessageVersion, Metadata, NotificationSettings, PushProvider, QuietHours, Reactions,
    ReadState, Role, UserGroups, Webhook,
};

/// The `format` of line 1.
pub const FORMAT: &str = "weft-export";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// Line 1 of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version ([`VERSION`]).
    pub version: u32,
    /// The weft that wrote it.
    pub weft: String,
    /// When the export started.
    pub exported_at: i64,
}

impl Header {
    /// The header this build writes.
    pub fn current() -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            weft: env!("CARGO_PKG_VERSION").to_owned(),
            exported_at: Timestamp::now().millis(),
        }
    }
}

/// One line after the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The application: always the first record.
    Application(AppRecord),
    /// A webhook of the application.
    Webhook(WebhookRecord),
    /// A chat; its members, messages and receipts follow it.
    Chat(ChatRecord),
    /// A member of the chat before it.
    Member(MemberRecord),
    /// A message of the chat before it, in number order.
    Message(MessageRecord),
    /// The record of a file attached to the message before it.
    Attachment(AttachmentRecord),
    /// A member's receipt positions in the chat before it.
    Receipt(ReceiptRecord),
    /// A push device of a user.
    Device(DeviceRecord),
    /// A user's notification settings.
    NotificationSettings(SettingsRecord),
    /// The last line: how many records came before it (the header not counted).
    End(EndRecord),
}

/// The application, with its signing secret and its chat counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRecord {
    pub id: String,
    pub token: String,
    pub name: String,
    /// Signs the application's user tokens: a secret, like the token.
    pub secret: String,
    pub jwks_url: Option<String>,
    pub user_groups: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub description: Option<String>,
    pub metadata: Metadata,
    /// Chat numbers handed out so far: new chats after an import get the next.
    pub chat_counter: u64,
}

/// A chat and its message counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRecord {
    pub number: u64,
    pub kind: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Message numbers handed out so far: new messages after an import get the next.
    pub seq_counter: u64,
    /// The pair a direct chat belongs to, as claimed.
    pub direct_pair: Option<[String; 2]>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    pub chat: u64,
    pub user: String,
    pub role: String,
    pub joined_at: i64,
}

/// A message with everything that happened to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRecord {
    pub chat: u64,
    pub seq: u64,
    pub sender: Option<String>,
    /// Empty on a tombstone.
    pub body: String,
    pub sent_at: i64,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<u64>,
    /// Derived from the body (for readers of the file; ignored by import).
    #[serde(default)]
    pub mentions: Vec<String>,
    pub edited_at: Option<i64>,
    /// Set on a tombstone.
    pub deleted_at: Option<i64>,
    /// The earlier bodies, oldest first.
    #[serde(default)]
    pub versions: Vec<VersionRecord>,
    /// Each emoji and who reacted with it.
    #[serde(default)]
    pub reactions: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub attachments: Vec<AttachedFile>,
    /// Rebuilt by import from the replies (kept to compare).
    pub reply_count: u64,
    pub last_reply_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRecord {
    pub body: String,
    pub written_at: i64,
    pub replaced_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRecord {
    pub id: String,
    pub chat: u64,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub message: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRecord {
    pub chat: u64,
    pub user: String,
    pub delivered: u64,
    pub read: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// The HMAC key: a secret.
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    pub user: String,
    pub id: String,
    pub provider: String,
    pub token: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsRecord {
    pub user: String,
    pub email: bool,
    pub email_address: Option<String>,
    pub push: bool,
    /// Chat numbers (as text: JSON keys) and their levels.
    pub chats: BTreeMap<String, String>,
    pub quiet_hours: Option<QuietHoursRecord>,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursRecord {
    pub from: String,
    pub to: String,
    pub tz: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndRecord {
    pub records: u64,
}

/// Why a field of a line cannot be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{field}` is not a valid value")]
pub struct BadField {
    /// The field.
    pub field: &'static str,
}

fn bad(field: &'static str) -> BadField {
    BadField { field }
}

fn user(raw: &str, field: &'static str) -> Result<UserId, BadField> {
    UserId::parse(raw).map_err(|_| bad(field))
}

fn opt_user(raw: Option<&String>, field: &'static str) -> Result<Option<UserId>, BadField> {
    raw.map(|u| user(u, field)).transpose()
}

fn number(n: u64, field: &'static str) -> Result<u64, BadField> {
    if n == 0 || i64::try_from(n).is_err() { Err(bad(field)) } else { Ok(n) }
}

// ---- model → record (export) ----

impl AppRecord {
    /// The record of `app`, with its chat counter.
    pub fn of(app: &Application, chat_counter: u64) -> Self {
        Self {
            id: app.id.as_str().to_owned(),
            token: app.token.as_str().to_owned(),
            name: app.name.clone(),
            secret: app.secret.expose().to_owned(),
            jwks_url: app.jwks_url.clone(),
            user_groups: app.user_groups.as_str().to_owned(),
            created_at: app.created_at.millis(),
            updated_at: app.updated_at.millis(),
            description: app.description.clone(),
            metadata: app.metadata.clone(),
            chat_counter,
        }
    }

    /// The application it describes.
    pub fn to_model(&self) -> Result<Application, BadField> {
        if self.id.is_empty() {
            return Err(bad("id"));
        }
        if self.token.is_empty() {
            return Err(bad("token"));
        }
        if self.secret.is_empty() {
            return Err(bad("secret"));
        }
        Ok(Application {
            id: AppId::new(self.id.clone()),
            token: AppToken::new(self.token.clone()),
            name: self.name.clone(),
            secret: SigningSecret::new(self.secret.clone()),
            jwks_url: self.jwks_url.clone(),
            user_groups: UserGroups::parse(&self.user_groups).ok_or(bad("user_groups"))?,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            description: self.description.clone(),
            metadata: self.metadata.clone(),
        })
    }
}

impl ChatRecord {
    /// The record of `chat`.
    pub fn of(chat: &Chat, seq_counter: u64, direct_pair: Option<&DirectPair>) -> Self {
        Self {
            number: chat.number.get(),
            kind: chat.kind.as_str().to_owned(),
            name: chat.name.clone(),
            description: chat.description.clone(),
            metadata: chat.metadata.clone(),
            created_by: chat.created_by.as_ref().map(|u| u.as_str().to_owned()),
            created_at: chat.created_at.millis(),
            updated_at: chat.updated_at.millis(),
            seq_counter,
            direct_pair: direct_pair.map(|p| p.users().map(|u| u.as_str().to_owned())),
        }
    }

    /// The chat of `app` it describes, and its direct pair.
    pub fn to_model(&self, app: &AppId) -> Result<(Chat, Option<DirectPair>), BadField> {
        let kind = match self.kind.as_str() {
            "group" => ChatKind::Group,
            "direct" => ChatKind::Direct,
            _ => return Err(bad("kind")),
        };
        let pair = match &self.direct_pair {
            Some([a, b]) => Some(
                DirectPair::new(user(a, "direct_pair")?, user(b, "direct_pair")?)
                    .ok_or(bad("direct_pair"))?,
            ),
            None => None,
        };
        let chat = Chat {
            app: app.clone(),
            number: ChatNumber(number(self.number, "number")?),
            kind,
            name: self.name.clone(),
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            created_by: opt_user(self.created_by.as_ref(), "created_by")?,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        };
        Ok((chat, pair))
    }
}

impl MemberRecord {
    /// The record of `member` of `chat`.
    pub fn of(chat: ChatNumber, member: &Member) -> Self {
        Self {
            chat: chat.get(),
            user: member.user.as_str().to_owned(),
            role: member.role.as_str().to_owned(),
            joined_at: member.joined_at.millis(),
        }
    }

    /// The member it describes.
    pub fn to_model(&self) -> Result<Member, BadField> {
        Ok(Member {
            user: user(&self.user, "user")?,
            joined_at: Timestamp(self.joined_at),
            role: Role::parse(&self.role).ok_or(bad("role"))?,
        })
    }
}

/// A message as import writes it: the message and its earlier bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullMessage {
    /// The message as it is now.
    pub message: Message,
    /// Its earlier bodies, oldest first.
    pub versions: Vec<MessageVersion>,
}

impl MessageRecord {
    /// The record of `m` with its earlier bodies.
    pub fn of(m: &Message, versions: &[MessageVersion]) -> Self {
        Self {
            chat: m.chat.get(),
            seq: m.number.get(),
            sender: m.sender.as_ref().map(|u| u.as_str().to_owned()),
            body: m.body.clone(),
            sent_at: m.created_at.millis(),
            client_msg_id: m.client_msg_id.clone(),
            reply_to: m.reply_to.map(MessageNumber::get),
            mentions: model::mentions(&m.body).iter().map(|u| u.as_str().to_owned()).collect(),
            edited_at: m.edited_at.map(Timestamp::millis),
            deleted_at: m.deleted_at.map(Timestamp::millis),
            versions: versions
                .iter()
                .map(|v| VersionRecord {
                    body: v.body.clone(),
                    written_at: v.written_at.millis(),
                    replaced_at: v.replaced_at.millis(),
                })
                .collect(),
            reactions: m
                .reactions
                .users()
                .map(|(emoji, users)| {
                    (emoji.to_owned(), users.iter().map(|u| u.as_str().to_owned()).collect())
                })
                .collect(),
            attachments: m.attachments.clone(),
            reply_count: m.reply_count,
            last_reply_at: m.last_reply_at.map(Timestamp::millis),
        }
    }

    /// The message of `app` it describes.
    pub fn to_model(&self, app: &AppId) -> Result<FullMessage, BadField> {
        let seq = number(self.seq, "seq")?;
        let reply_to = match self.reply_to {
            Some(r) if r >= seq || r == 0 => return Err(bad("reply_to")),
            r => r.map(MessageNumber),
        };
        if self.deleted_at.is_some() && (!self.body.is_empty() || !self.versions.is_empty()) {
            return Err(bad("deleted_at"));
        }
        let mut pairs = Vec::new();
        for (emoji, users) in &self.reactions {
            model::check_emoji(emoji).map_err(|_| bad("reactions"))?;
            for u in users {
                pairs.push((emoji.clone(), user(u, "reactions")?));
            }
        }
        for file in &self.attachments {
            AttachmentId::parse(file.id.as_str()).map_err(|_| bad("attachments"))?;
        }
        let message = Message {
            app: app.clone(),
            chat: ChatNumber(number(self.chat, "chat")?),
            number: MessageNumber(seq),
            body: self.body.clone(),
            sender: opt_user(self.sender.as_ref(), "sender")?,
            client_msg_id: self.client_msg_id.clone(),
            reply_to,
            created_at: Timestamp(self.sent_at),
            edited_at: self.edited_at.map(Timestamp),
            deleted_at: self.deleted_at.map(Timestamp),
            reply_count: self.reply_count,
            last_reply_at: self.last_reply_at.map(Timestamp),
            attachments: self.attachments.iter().map(|f| AttachedFile { url: None, ..f.clone() }).collect(),
            reactions: Reactions::from_pairs(pairs),
        };
        let versions = self
            .versions
            .iter()
            .map(|v| MessageVersion {
                body: v.body.clone(),
                written_at: Timestamp(v.written_at),
                replaced_at: Timestamp(v.replaced_at),
            })
            .collect();
        Ok(FullMessage { message, versions })
    }
}

impl AttachmentRecord {
    /// The record of `a`.
    pub fn of(a: &Attachment) -> Self {
        Self {
            id: a.id.as_str().to_owned(),
            chat: a.chat.get(),
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            created_by: a.created_by.as_ref().map(|u| u.as_str().to_owned()),
            created_at: a.created_at.millis(),
            message: a.message.map(MessageNumber::get),
        }
    }

    /// The attachment of `app` it describes.
    pub fn to_model(&self, app: &AppId) -> Result<Attachment, BadField> {
        Ok(Attachment {
            app: app.clone(),
            id: AttachmentId::parse(&self.id).map_err(|_| bad("id"))?,
            chat: ChatNumber(number(self.chat, "chat")?),
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            created_by: opt_user(self.created_by.as_ref(), "created_by")?,
            created_at: Timestamp(self.created_at),
            message: self.message.map(|n| number(n, "message").map(MessageNumber)).transpose()?,
        })
    }
}

impl ReceiptRecord {
    /// The record of `state` in `chat`.
    pub fn of(chat: ChatNumber, state: &ReadState) -> Self {
        Self {
            chat: chat.get(),
            user: state.user.as_str().to_owned(),
            delivered: state.delivered.get(),
            read: state.read.get(),
        }
    }

    /// The receipt positions it describes.
    pub fn to_model(&self) -> Result<ReadState, BadField> {
        Ok(ReadState {
            user: user(&self.user, "user")?,
            delivered: MessageNumber(self.delivered),
            read: MessageNumber(self.read),
        })
    }
}

impl WebhookRecord {
    /// The record of `w`.
    pub fn of(w: &Webhook) -> Self {
        Self {
            id: w.id.as_str().to_owned(),
            url: w.url.clone(),
            events: w.events.iter().map(|e| e.as_str().to_owned()).collect(),
            secret: w.secret.clone(),
            previous_secret: w.previous_secret.clone(),
            previous_until: w.previous_until.map(Timestamp::millis),
            created_at: w.created_at.millis(),
            disabled_at: w.disabled_at.map(Timestamp::millis),
            disabled_reason: w.disabled_reason.clone(),
        }
    }

    /// The webhook of `app` it describes.
    pub fn to_model(&self, app: &AppId) -> Result<Webhook, BadField> {
        let events =
            self.events.iter().map(|e| EventType::parse(e).ok_or(bad("events"))).collect::<Result<_, _>>()?;
        Ok(Webhook {
            app: app.clone(),
            id: WebhookId::parse(&self.id).map_err(|_| bad("id"))?,
            url: self.url.clone(),
            events,
            secret: self.secret.clone(),
            previous_secret: self.previous_secret.clone(),
            previous_until: self.previous_until.map(Timestamp),
            created_at: Timestamp(self.created_at),
            disabled_at: self.disabled_at.map(Timestamp),
            disabled_reason: self.disabled_reason.clone(),
        })
    }
}

impl DeviceRecord {
    /// The record of `d`.
    pub fn of(d: &Device) -> Self {
        Self {
            user: d.user.as_str().to_owned(),
            id: d.id.as_str().to_owned(),
            provider: d.provider.as_str().to_owned(),
            token: d.token.clone(),
            created_at: d.created_at.millis(),
            updated_at: d.updated_at.millis(),
        }
    }

    /// The device of `app` it describes.
    pub fn to_model(&self, app: &AppId) -> Result<Device, BadField> {
        Ok(Device {
            app: app.clone(),
            user: user(&self.user, "user")?,
            id: DeviceId::parse(&self.id).map_err(|_| bad("id"))?,
            provider: PushProvider::parse(&self.provider).ok_or(bad("provider"))?,
            token: self.token.clone(),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

impl SettingsRecord {
    /// The record of `s`.
    pub fn of(s: &NotificationSettings) -> Self {
        Self {
            user: s.user.as_str().to_owned(),
            email: s.email,
            email_address: s.email_address.clone(),
            push: s.push,
            chats: s.chats.iter().map(|(c, l)| (c.get().to_string(), l.as_str().to_owned())).collect(),
            quiet_hours: s.quiet_hours.as_ref().map(|q| QuietHoursRecord {
                from: q.from.clone(),
                to: q.to.clone(),
                tz: q.tz.clone(),
            }),
            updated_at: s.updated_at.millis(),
        }
    }

    /// The settings of `app` it describes.
    pub fn to_model(&self, app: &AppId) -> Result<NotificationSettings, BadField> {
        let chats = self
            .chats
            .iter()
            .map(|(c, l)| {
                let chat = c.parse().map_err(|_| bad("chats")).and_then(|c| number(c, "chats"))?;
                Ok((ChatNumber(chat), ChatLevel::parse(l).ok_or(bad("chats"))?))
            })
            .collect::<Result<_, BadField>>()?;
        Ok(NotificationSettings {
            app: app.clone(),
            user: user(&self.user, "user")?,
            email: self.email,
            email_address: self.email_address.clone(),
            push: self.push,
            chats,
            quiet_hours: self.quiet_hours.as_ref().map(|q| QuietHours {
                from: q.from.clone(),
                to: q.to.clone(),
                tz: q.tz.clone(),
            }),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_line() -> &'static str {
        r#"{"type":"message","chat":1,"seq":2,"sender":"bob","body":"hi @alice","sent_at":5,
           "client_msg_id":"c1","reply_to":1,"mentions":["alice"],"edited_at":7,"deleted_at":null,
           "versions":[{"body":"hello","written_at":5,"replaced_at":7}],
           "reactions":{"👍":["alice","bob"]},"attachments":[],"reply_count":0,"last_reply_at":null}"#
    }

    #[test]
    fn a_message_line_reads_into_the_model_and_back() {
        let record: Record = serde_json::from_str(message_line()).unwrap();
        let Record::Message(m) = &record else { panic!("not a message: {record:?}") };
        let full = m.to_model(&AppId::new("a")).unwrap();
        assert_eq!(full.message.reactions.count("👍"), 2);
        assert_eq!(full.versions.len(), 1);
        assert_eq!(MessageRecord::of(&full.message, &full.versions), *m);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        let extra = message_line().replace("\"sent_at\":5", "\"sent_at\":5,\"surprise\":1");
        assert!(serde_json::from_str::<Record>(&extra).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"type":"chats","number":1}"#).is_err());
    }

    #[test]
    fn bad_values_name_their_field() {
        let record: Record =
            serde_json::from_str(&message_line().replace("\"reply_to\":1", "\"reply_to\":9")).unwrap();
        let Record::Message(m) = record else { panic!() };
        assert_eq!(m.to_model(&AppId::new("a")), Err(BadField { field: "reply_to" }));
        let member = MemberRecord { chat: 1, user: "a b".into(), role: "member".into(), joined_at: 0 };
        assert_eq!(member.to_model(), Err(BadField { field: "user" }));
        let member = MemberRecord { chat: 1, user: "ab".into(), role: "boss".into(), joined_at: 0 };
        assert_eq!(member.to_model(), Err(BadField { field: "role" }));
    }
}
