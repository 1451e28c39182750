//! Row decoding and conversions between weft's values and CQL's.

use scylla::deserialize::row::DeserializeRow;
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlTimestamp, MaybeUnset};

use crate::auth::{AuthSession, AuthSessionId, SigningSecret, TokenHash};
use std::collections::BTreeMap;

use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use crate::model::{
    Application, AttachedFile, Attachment, Chat, ChatKind, ChatLevel, Device, EventType, Message, Metadata,
    NotificationSettings, Page, PushProvider, QuietHours, Reactions, UserGroups, Webhook,
};
use crate::store::{StoreError, bucket_of};

/// Decodes every row of a result; a row of the wrong shape is `Corrupt`.
pub(super) fn decode_rows<R>(result: QueryResult, what: &'static str) -> Result<Vec<R>, StoreError>
where
    R: for<'frame> DeserializeRow<'frame, 'frame>,
{
    let corrupt = |e: &dyn std::error::Error| {
        tracing::warn!(what, error = %e, "cannot decode CQL rows");
        StoreError::Corrupt { what }
    };
    let rows = result.into_rows_result().map_err(|e| corrupt(&e))?;
    let iter = rows.rows::<R>().map_err(|e| corrupt(&e))?;
    iter.collect::<Result<Vec<R>, _>>().map_err(|e| corrupt(&e))
}

/// Decodes the first row of a result, if any.
pub(super) fn decode_first<R>(result: QueryResult, what: &'static str) -> Result<Option<R>, StoreError>
where
    R: for<'frame> DeserializeRow<'frame, 'frame>,
{
    Ok(decode_rows(result, what)?.into_iter().next())
}

/// A stored number as the CQL `bigint` it is kept in; numbers above
/// `i64::MAX` cannot be stored.
pub(super) fn bigint(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt { what: "number above i64::MAX" })
}

/// A query bound as a `bigint`, saturating (nothing is stored above `i64::MAX`).
pub(super) fn bigint_bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `bigint` read back as a number; negative ones are `Corrupt`.
pub(super) fn unsigned(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt { what })
}

/// `skip + limit` as a CQL `LIMIT` (an `int`).
pub(super) fn cql_limit(rows: usize) -> i32 {
    i32::try_from(rows).unwrap_or(i32::MAX)
}

pub(super) fn ts(at: Timestamp) -> CqlTimestamp {
    CqlTimestamp(at.millis())
}

pub(super) fn from_ts(at: CqlTimestamp) -> Timestamp {
    Timestamp(at.0)
}

/// Drops the first `page.skip` rows (the query fetched `skip + limit`).
pub(super) fn skip_page<T>(rows: Vec<T>, page: Page) -> Vec<T> {
    rows.into_iter().skip(page.skip).take(page.limit).collect()
}

pub(super) type ApplicationRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    CqlTimestamp,
    CqlTimestamp,
    Option<String>,
    Option<String>,
);
/// number, kind, created_at, name, description, metadata, created_by, updated_at.
pub(super) type ChatRow = (
    i64,
    String,
    CqlTimestamp,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
);

/// The columns of a [`ChatRow`], in order.
pub(super) const CHAT_COLUMNS: &str =
    "number, kind, created_at, name, description, metadata, created_by, updated_at";

/// `metadata` as the JSON text it is kept in; unset when empty (no tombstone on insert).
pub(super) fn metadata_text(metadata: &Metadata) -> Option<String> {
    (!metadata.is_empty()).then(|| serde_json::Value::Object(metadata.clone()).to_string())
}

/// `metadata` read back; anything but a JSON object is `Corrupt`.
fn metadata_from(text: Option<String>) -> Result<Metadata, StoreError> {
    match text.as_deref() {
        None | Some("") => Ok(Metadata::new()),
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(StoreError::Corrupt { what: "metadata" }),
        },
    }
}
pub(super) type MessageRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    CqlTimestamp,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<i64>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<Vec<(String, String)>>,
);

/// chat, name, content_type, size, created_by, created_at, message.
pub(super) type AttachmentRow = (i64, String, String, i64, Option<String>, CqlTimestamp, Option<i64>);

pub(super) fn attachment_from_row(
    app: &AppId,
    id: &AttachmentId,
    row: AttachmentRow,
) -> Result<Attachment, StoreError> {
    let (chat, name, content_type, size, created_by, created_at, message) = row;
    Ok(Attachment {
        app: app.clone(),
        id: id.clone(),
        chat: ChatNumber(unsigned(chat, "attachment chat")?),
        name,
        content_type,
        size: unsigned(size, "attachment size")?,
        created_by: created_by.map(UserId::from_store),
        created_at: from_ts(created_at),
        message: message.map(|n| unsigned(n, "attachment message").map(MessageNumber)).transpose()?,
    })
}

/// id, url, events, secret, previous_secret, previous_until, created_at, disabled_at, disabled_reason.
pub(super) type WebhookRow = (
    String,
    String,
    Option<Vec<String>>,
    String,
    Option<String>,
    Option<CqlTimestamp>,
    CqlTimestamp,
    Option<CqlTimestamp>,
    Option<String>,
);

/// The columns of a [`WebhookRow`], in order.
pub(super) const WEBHOOK_COLUMNS: &str =
    "id, url, events, secret, previous_secret, previous_until, created_at, disabled_at, disabled_reason";

/// id, app, user_id, device, ip, user_agent, created_at, last_seen_at,
/// expires_at, generation, refresh_hash, rotated, confirmed, version.
pub(super) type AuthSessionRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    CqlTimestamp,
    CqlTimestamp,
    CqlTimestamp,
    i64,
    Vec<u8>,
    Option<Vec<Vec<u8>>>,
    Option<bool>,
    i64,
);

/// The columns of an [`AuthSessionRow`], in order.
pub(super) const AUTH_SESSION_COLUMNS: &str = "id, app, user_id, device, ip, user_agent, created_at, \
     last_seen_at, expires_at, generation, refresh_hash, rotated, confirmed, version";

/// A session read back; a hash that is not 32 bytes or a bad user id is `Corrupt`.
pub(super) fn auth_session_from_row(row: AuthSessionRow) -> Result<AuthSession, StoreError> {
    let (
        id,
        app,
        user,
        device,
        ip,
        user_agent,
        created_at,
        last_seen_at,
        expires_at,
        generation,
        hash,
        rotated,
        confirmed,
        version,
    ) = row;
    let hash_of =
        |bytes: &[u8]| TokenHash::from_slice(bytes).ok_or(StoreError::Corrupt { what: "session hash" });
    Ok(AuthSession {
        id: AuthSessionId::from_store(id),
        app: AppId::new(app),
        user: UserId::parse(&user).map_err(|_| StoreError::Corrupt { what: "session user" })?,
        device,
        ip,
        user_agent,
        created_at: from_ts(created_at),
        last_seen_at: from_ts(last_seen_at),
        expires_at: from_ts(expires_at),
        generation: unsigned(generation, "session generation")?,
        refresh_hash: hash_of(&hash)?,
        rotated: rotated.unwrap_or_default().iter().map(|h| hash_of(h)).collect::<Result<_, _>>()?,
        confirmed: confirmed.unwrap_or(false),
        version: unsigned(version, "session version")?,
    })
}

/// A webhook's events as stored: their wire names, in order.
pub(super) fn event_names(events: &[EventType]) -> Vec<&'static str> {
    events.iter().map(|e| e.as_str()).collect()
}

/// A webhook read back; an event name this build does not know is `Corrupt`
/// (a null list, which is how CQL keeps an empty one, reads as none).
pub(super) fn webhook_from_row(app: &AppId, row: WebhookRow) -> Result<Webhook, StoreError> {
    let (id, url, events, secret, previous_secret, previous_until, created_at, disabled_at, disabled_reason) =
        row;
    let events = events
        .unwrap_or_default()
        .iter()
        .map(|name| EventType::parse(name).ok_or(StoreError::Corrupt { what: "webhook event" }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Webhook {
        app: app.clone(),
        id: WebhookId::from_store(id),
        url,
        events,
        secret,
        previous_secret,
        previous_until: previous_until.map(from_ts),
        created_at: from_ts(created_at),
        disabled_at: disabled_at.map(from_ts),
        disabled_reason,
    })
}

/// id, provider, token, created_at, updated_at.
pub(super) type DeviceRow = (String, String, String, CqlTimestamp, CqlTimestamp);

/// The columns of a [`DeviceRow`], in order.
pub(super) const DEVICE_COLUMNS: &str = "id, provider, \"token\", created_at, updated_at";

/// A device read back; a provider name this build does not know is `Corrupt`.
pub(super) fn device_from_row(app: &AppId, user: &UserId, row: DeviceRow) -> Result<Device, StoreError> {
    let (id, provider, token, created_at, updated_at) = row;
    let provider = PushProvider::parse(&provider).ok_or(StoreError::Corrupt { what: "device provider" })?;
    Ok(Device {
        app: app.clone(),
        user: user.clone(),
        id: DeviceId::from_store(id),
        provider,
        token,
        created_at: from_ts(created_at),
        updated_at: from_ts(updated_at),
    })
}

/// email, email_address, push, chats, quiet_from, quiet_to, quiet_tz, updated_at.
pub(super) type SettingsRow = (
    bool,
    Option<String>,
    bool,
    Option<BTreeMap<i64, String>>,
    Option<String>,
    Option<String>,
    Option<String>,
    CqlTimestamp,
);

/// The columns of a [`SettingsRow`], in order.
pub(super) const SETTINGS_COLUMNS: &str =
    "email, email_address, push, chats, quiet_from, quiet_to, quiet_tz, updated_at";

/// A user's per-chat levels as stored: chat number → level wire name.
pub(super) fn chat_levels(
    chats: &BTreeMap<ChatNumber, ChatLevel>,
) -> Result<BTreeMap<i64, &'static str>, StoreError> {
    chats.iter().map(|(chat, level)| Ok((bigint(chat.get())?, level.as_str()))).collect()
}

/// Settings read back. A level name this build does not know, a negative
/// chat number, or quiet hours with some of their three columns missing are
/// `Corrupt` (a null map, which is how CQL keeps an empty one, reads as none).
pub(super) fn settings_from_row(
    app: &AppId,
    user: &UserId,
    row: SettingsRow,
) -> Result<NotificationSettings, StoreError> {
    let (email, email_address, push, chats, quiet_from, quiet_to, quiet_tz, updated_at) = row;
    let chats = chats
        .unwrap_or_default()
        .into_iter()
        .map(|(chat, level)| {
            let chat = ChatNumber(unsigned(chat, "notification settings chat")?);
            let level = ChatLevel::parse(&level).ok_or(StoreError::Corrupt { what: "chat level" })?;
            Ok((chat, level))
        })
        .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
    let quiet_hours = match (quiet_from, quiet_to, quiet_tz) {
        (Some(from), Some(to), Some(tz)) => Some(QuietHours { from, to, tz }),
        (None, None, None) => None,
        _ => return Err(StoreError::Corrupt { what: "quiet hours" }),
    };
    Ok(NotificationSettings {
        app: app.clone(),
        user: user.clone(),
        email,
        email_address,
        push,
        chats,
        quiet_hours,
        updated_at: from_ts(updated_at),
    })
}

/// A message's attachments as stored (a JSON list; null when none).
pub(super) fn attachments_text(files: &[AttachedFile]) -> Result<Option<String>, StoreError> {
    if files.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(files).map(Some).map_err(|_| StoreError::Corrupt { what: "message attachments" })
}

fn attachments_from_text(text: Option<String>) -> Result<Vec<AttachedFile>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => serde_json::from_str(&t).map_err(|_| StoreError::Corrupt { what: "message attachments" }),
    }
}

pub(super) fn application_from_row(row: ApplicationRow) -> Result<Application, StoreError> {
    let (token, id, name, secret, jwks_url, user_groups, created_at, updated_at, description, metadata) = row;
    let user_groups = match user_groups.as_deref() {
        None => UserGroups::Open,
        Some(name) => {
            UserGroups::parse(name).ok_or(StoreError::Corrupt { what: "application user_groups" })?
        }
    };
    Ok(Application {
        id: AppId::new(id),
        token: AppToken::new(token),
        name,
        secret: SigningSecret::new(secret.unwrap_or_default()),
        jwks_url,
        user_groups,
        created_at: from_ts(created_at),
        updated_at: from_ts(updated_at),
        description,
        metadata: metadata_from(metadata)?,
    })
}

pub(super) fn chat_from_row(app: &AppId, row: ChatRow) -> Result<Chat, StoreError> {
    let (number, kind, created_at, name, description, metadata, created_by, updated_at) = row;
    Ok(Chat {
        app: app.clone(),
        number: ChatNumber(unsigned(number, "chat number")?),
        kind: ChatKind::from_stored(&kind),
        name,
        description,
        metadata: metadata_from(metadata)?,
        created_by: created_by.map(UserId::from_store),
        created_at: from_ts(created_at),
        updated_at: from_ts(updated_at.unwrap_or(created_at)),
    })
}

pub(super) fn message_from_row(
    app: &AppId,
    chat: ChatNumber,
    row: MessageRow,
) -> Result<Message, StoreError> {
    let (
        number,
        body,
        sender,
        client_msg_id,
        reply_to,
        created_at,
        edited_at,
        deleted_at,
        reply_count,
        last_reply_at,
        attachments,
        reactions,
    ) = row;
    Ok(Message {
        app: app.clone(),
        chat,
        number: MessageNumber(unsigned(number, "message number")?),
        body,
        sender: sender.map(UserId::from_store),
        client_msg_id,
        reply_to: reply_to.map(|n| unsigned(n, "reply_to").map(MessageNumber)).transpose()?,
        created_at: from_ts(created_at),
        edited_at: edited_at.map(from_ts),
        deleted_at: deleted_at.map(from_ts),
        reply_count: reply_count.map_or(Ok(0), |n| unsigned(n, "reply_count"))?,
        last_reply_at: last_reply_at.map(from_ts),
        attachments: attachments_from_text(attachments)?,
        reactions: Reactions::from_pairs(
            reactions.unwrap_or_default().into_iter().map(|(e, u)| (e, UserId::from_store(u))),
        ),
    })
}

/// The values of one `insert_message`; optional columns are unset, not null,
/// so that no tombstone is written.
type MessageValues<'a> = (
    &'a str,
    i64,
    i64,
    i64,
    &'a str,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    MaybeUnset<i64>,
    CqlTimestamp,
    MaybeUnset<String>,
);

pub(super) fn unset_if_none<T>(value: Option<T>) -> MaybeUnset<T> {
    value.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

pub(super) fn message_values(message: &Message) -> Result<MessageValues<'_>, StoreError> {
    Ok((
        message.app.as_str(),
        bigint(message.chat.get())?,
        bigint(bucket_of(message.number))?,
        bigint(message.number.get())?,
        &message.body,
        unset_if_none(message.sender.as_ref().map(UserId::as_str)),
        unset_if_none(message.client_msg_id.as_deref()),
        unset_if_none(message.reply_to.map(|n| bigint(n.get())).transpose()?),
        ts(message.created_at),
        unset_if_none(attachments_text(&message.attachments)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_rows_read_back_and_unknown_events_are_corrupt() {
        let app = AppId::generate();
        let row = |events: Option<Vec<&str>>| -> WebhookRow {
            let events = events.map(|e| e.into_iter().map(str::to_owned).collect());
            ("id".into(), "u".into(), events, "s".into(), None, None, CqlTimestamp(1), None, None)
        };
        let read = webhook_from_row(&app, row(Some(vec!["user.offline", "receipt.read"]))).unwrap();
        assert_eq!(read.events, [EventType::UserOffline, EventType::ReceiptRead]);
        assert_eq!(event_names(&read.events), ["user.offline", "receipt.read"]);
        assert!(
            webhook_from_row(&app, row(None)).unwrap().events.is_empty(),
            "CQL keeps an empty list as null"
        );
        let unknown = webhook_from_row(&app, row(Some(vec!["message.created", "message.exploded"])));
        assert!(matches!(unknown, Err(StoreError::Corrupt { what: "webhook event" })));
    }

    #[test]
    fn device_rows_read_back_and_unknown_providers_are_corrupt() {
        let (app, user) = (AppId::generate(), UserId::parse("u").unwrap());
        let row = |provider: &str| -> DeviceRow {
            ("phone".into(), provider.into(), "t".into(), CqlTimestamp(1), CqlTimestamp(2))
        };
        let read = device_from_row(&app, &user, row("apns")).unwrap();
        assert_eq!(
            (read.provider, read.id.as_str(), read.updated_at),
            (PushProvider::Apns, "phone", Timestamp(2))
        );
        let unknown = device_from_row(&app, &user, row("pigeon"));
        assert!(matches!(unknown, Err(StoreError::Corrupt { what: "device provider" })));
    }

    #[test]
    fn settings_rows_read_back_and_bad_ones_are_corrupt() {
        let (app, user) = (AppId::generate(), UserId::parse("u").unwrap());
        let row = |chats: Option<Vec<(i64, &str)>>, quiet: [Option<&str>; 3]| -> SettingsRow {
            let chats = chats.map(|c| c.into_iter().map(|(n, l)| (n, l.to_owned())).collect());
            let [from, to, tz] = quiet.map(|q| q.map(str::to_owned));
            (true, None, false, chats, from, to, tz, CqlTimestamp(3))
        };
        let levels = BTreeMap::from([(ChatNumber(2), ChatLevel::None), (ChatNumber(9), ChatLevel::Mentions)]);
        let stored = chat_levels(&levels).unwrap();
        let stored: Vec<(i64, &str)> = stored.into_iter().collect();
        let read =
            settings_from_row(&app, &user, row(Some(stored), [Some("22:00"), Some("07:00"), Some("UTC")]))
                .unwrap();
        assert_eq!(read.chats, levels);
        assert_eq!(read.quiet_hours.map(|q| q.tz), Some("UTC".to_owned()));
        let empty = settings_from_row(&app, &user, row(None, [None, None, None])).unwrap();
        assert!(empty.chats.is_empty() && empty.quiet_hours.is_none(), "CQL keeps an empty map as null");
        for bad in [
            row(Some(vec![(1, "loud")]), [None, None, None]),
            row(Some(vec![(-1, "all")]), [None, None, None]),
            row(None, [Some("22:00"), None, Some("UTC")]),
        ] {
            assert!(matches!(settings_from_row(&app, &user, bad), Err(StoreError::Corrupt { .. })));
        }
    }
}
