//! Every statement the store runs, prepared once at connect.

use scylla::client::session::Session;
use scylla::frame::types::Consistency;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::rows::{AUTH_SESSION_COLUMNS, CHAT_COLUMNS, DEVICE_COLUMNS, SETTINGS_COLUMNS, WEBHOOK_COLUMNS};
use crate::store::StoreError;

/// Every statement the store runs, prepared once at connect.
pub(super) struct Statements {
    pub(super) insert_application: PreparedStatement,
    pub(super) application_by_token: PreparedStatement,
    pub(super) update_application: PreparedStatement,
    pub(super) insert_application_id: PreparedStatement,
    pub(super) application_token_by_id: PreparedStatement,
    /// The first page of application ids, in token order.
    pub(super) application_ids: PreparedStatement,
    /// The next page of application ids after one, in token order.
    pub(super) application_ids_after: PreparedStatement,
    pub(super) insert_chat: PreparedStatement,
    pub(super) update_chat: PreparedStatement,
    pub(super) chat: PreparedStatement,
    pub(super) chats: PreparedStatement,
    pub(super) max_chat: PreparedStatement,
    pub(super) insert_message: PreparedStatement,
    pub(super) insert_chat_bucket: PreparedStatement,
    pub(super) message: PreparedStatement,
    /// Conditional: the new body, the old one appended to `versions`, unless deleted or edited meanwhile.
    pub(super) edit_message: PreparedStatement,
    /// Conditional: the tombstone, unless deleted already.
    pub(super) delete_message: PreparedStatement,
    pub(super) add_reaction: PreparedStatement,
    pub(super) remove_reaction: PreparedStatement,
    pub(super) message_versions: PreparedStatement,
    pub(super) insert_thread_reply: PreparedStatement,
    pub(super) count_thread_replies: PreparedStatement,
    /// `USING TIMESTAMP` the count: the highest count wins whatever the order.
    pub(super) set_reply_count: PreparedStatement,
    /// `USING TIMESTAMP` the reply's time: the newest wins.
    pub(super) set_last_reply_at: PreparedStatement,
    pub(super) thread_replies: PreparedStatement,
    pub(super) messages_in_bucket: PreparedStatement,
    pub(super) buckets_between: PreparedStatement,
    pub(super) newest_bucket: PreparedStatement,
    pub(super) member: PreparedStatement,
    /// Conditional (`IF EXISTS`): an update of a removed member must not bring back a row.
    pub(super) set_role: PreparedStatement,
    pub(super) members: PreparedStatement,
    pub(super) user_chats: PreparedStatement,
    pub(super) direct_chat: PreparedStatement,
    /// Lightweight transaction: INSERT ... IF NOT EXISTS.
    pub(super) claim_direct_chat: PreparedStatement,
    /// The same read as `direct_chat` at SERIAL consistency, after a lost claim.
    pub(super) direct_chat_serial: PreparedStatement,
    pub(super) advance_delivered: PreparedStatement,
    pub(super) advance_read: PreparedStatement,
    pub(super) read_state: PreparedStatement,
    pub(super) read_states: PreparedStatement,
    pub(super) insert_attachment: PreparedStatement,
    pub(super) attachment: PreparedStatement,
    /// Conditional: sets `message` unless set (the `chat` condition fails on a missing row).
    pub(super) attach: PreparedStatement,
    /// Conditional: clears `message` if it is still the given one.
    pub(super) detach: PreparedStatement,
    pub(super) delete_attachment: PreparedStatement,
    pub(super) insert_webhook: PreparedStatement,
    pub(super) webhook: PreparedStatement,
    /// Every webhook of an application (one partition), by id.
    pub(super) webhooks: PreparedStatement,
    /// Conditional (`IF EXISTS`): an update of a deleted webhook must not bring back a row.
    pub(super) update_webhook: PreparedStatement,
    /// Conditional (`IF EXISTS`): tells whether there was a webhook to delete.
    pub(super) delete_webhook: PreparedStatement,
    /// Conditional (`IF NOT EXISTS`): registers a device that was not there.
    pub(super) insert_device: PreparedStatement,
    /// Conditional (`IF EXISTS`): a new provider and token for a device that
    /// is there (`created_at` stays).
    pub(super) update_device: PreparedStatement,
    /// Every device of a user (one partition), by id.
    pub(super) devices: PreparedStatement,
    /// Conditional (`IF EXISTS`): tells whether there was a device to delete.
    pub(super) delete_device: PreparedStatement,
    pub(super) notification_settings: PreparedStatement,
    /// Writes every column (nulls clear, the map is replaced).
    pub(super) put_notification_settings: PreparedStatement,
    pub(super) insert_auth_session: PreparedStatement,
    pub(super) insert_user_auth_session: PreparedStatement,
    pub(super) auth_session: PreparedStatement,
    /// A user's session ids (one partition).
    pub(super) user_auth_sessions: PreparedStatement,
    /// Conditional (`IF version = ?`): a refresh, a confirmation or a touch.
    pub(super) replace_auth_session: PreparedStatement,
    /// Conditional (`IF EXISTS`): tells whether there was a session to revoke.
    pub(super) delete_auth_session: PreparedStatement,
    pub(super) delete_user_auth_session: PreparedStatement,
    /// LOGGED batch: the `members` row and its `user_chats` mirror.
    pub(super) add_member: Batch,
    /// LOGGED batch: deletes the `members` row and its `user_chats` mirror.
    pub(super) remove_member: Batch,
}

const DIRECT_CHAT: &str = "SELECT chat FROM direct_chats WHERE app = ? AND user_low = ? AND user_high = ?";
const READ_STATE: &str = "SELECT user_id, delivered, read FROM read_state WHERE app = ? AND chat = ?";
const MESSAGE_COLUMNS: &str = "number, body, sender, client_msg_id, reply_to, created_at, edited_at, deleted_at, reply_count, last_reply_at, attachments, reactions";
const MESSAGE_KEY: &str = "app = ? AND chat = ? AND bucket = ? AND number = ?";

impl Statements {
    pub(super) async fn prepare(session: &Session) -> Result<Self, StoreError> {
        let p = |cql: String| prepare(session, cql);
        let insert_member =
            p("INSERT INTO members (app, chat, user_id, joined_at, role) VALUES (?, ?, ?, ?, ?)".into());
        let insert_user_chat =
            p("INSERT INTO user_chats (app, user_id, chat, joined_at) VALUES (?, ?, ?, ?)".into());
        let delete_member = p("DELETE FROM members WHERE app = ? AND chat = ? AND user_id = ?".into());
        let delete_user_chat = p("DELETE FROM user_chats WHERE app = ? AND user_id = ? AND chat = ?".into());
        Ok(Statements {
            insert_application: p(
                "INSERT INTO applications (\"token\", id, name, signing_secret, jwks_url, user_groups, \
                 created_at, updated_at, description, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    .into(),
            )
            .await?,
            application_by_token: p(
                "SELECT \"token\", id, name, signing_secret, jwks_url, user_groups, created_at, updated_at, \
                 description, metadata FROM applications \
                 WHERE \"token\" = ?".into(),
            )
            .await?,
            update_application: p(
                "UPDATE applications SET name = ?, signing_secret = ?, jwks_url = ?, user_groups = ?, \
                 updated_at = ?, description = ?, metadata = ? \
                 WHERE \"token\" = ?".into()
            )
            .await?,
            insert_application_id: p("INSERT INTO applications_by_id (id, \"token\") VALUES (?, ?)".into()).await?,
            application_token_by_id: p("SELECT \"token\" FROM applications_by_id WHERE id = ?".into()).await?,
            application_ids: p("SELECT id FROM applications_by_id LIMIT ?".into()).await?,
            application_ids_after: p(
                "SELECT id FROM applications_by_id WHERE token(id) > token(?) LIMIT ?".into(),
            )
            .await?,
            insert_chat: p("INSERT INTO chats (app, number, kind, created_at, name, description, metadata, \
                 created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)".into()).await?,
            update_chat: p("UPDATE chats SET name = ?, description = ?, metadata = ?, updated_at = ? \
                 WHERE app = ? AND number = ?".into()).await?,
            chat: p(format!("SELECT {CHAT_COLUMNS} FROM chats WHERE app = ? AND number = ?")).await?,
            chats: p(
                format!("SELECT {CHAT_COLUMNS} FROM chats WHERE app = ? ORDER BY number ASC LIMIT ?")
            )
            .await?,
            max_chat: p("SELECT number FROM chats WHERE app = ? LIMIT 1".into()).await?,
            insert_message: p("INSERT INTO messages (app, chat, bucket, number, body, sender, client_msg_id, \
                 reply_to, created_at, attachments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                .into())
            .await?,
            edit_message: p(format!(
                "UPDATE messages SET body = ?, edited_at = ?, versions = versions + ? WHERE {MESSAGE_KEY} \
                 IF deleted_at = null AND body = ?"
            ))
            .await?,
            delete_message: p(format!(
                "UPDATE messages SET body = '', deleted_at = ?, versions = null, attachments = null, reactions = null \
                 WHERE {MESSAGE_KEY} \
                 IF deleted_at = null"
            ))
            .await?,
            add_reaction: p(format!(
                "UPDATE messages SET reactions = reactions + ? WHERE {MESSAGE_KEY} IF deleted_at = null"
            ))
            .await?,
            remove_reaction: p(format!(
                "UPDATE messages SET reactions = reactions - ? WHERE {MESSAGE_KEY} IF deleted_at = null"
            ))
            .await?,
            message_versions: p(format!("SELECT versions FROM messages WHERE {MESSAGE_KEY}")).await?,
            insert_thread_reply: p(
                "INSERT INTO thread_replies (app, chat, parent, number) VALUES (?, ?, ?, ?)".into(),
            )
            .await?,
            count_thread_replies: p(
                "SELECT COUNT(*) FROM thread_replies WHERE app = ? AND chat = ? AND parent = ?".into(),
            )
            .await?,
            set_reply_count: p(format!(
                "UPDATE messages USING TIMESTAMP ? SET reply_count = ? WHERE {MESSAGE_KEY}"
            ))
            .await?,
            set_last_reply_at: p(format!(
                "UPDATE messages USING TIMESTAMP ? SET last_reply_at = ? WHERE {MESSAGE_KEY}"
            ))
            .await?,
            thread_replies: p(
                "SELECT number FROM thread_replies WHERE app = ? AND chat = ? AND parent = ? AND number > ? LIMIT ?"
                    .into(),
            )
            .await?,
            insert_chat_bucket: p("INSERT INTO chat_buckets (app, chat, bucket) VALUES (?, ?, ?)".into()).await?,
            message: p(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE app = ? AND chat = ? AND bucket = ? AND number = ?"
            ))
            .await?,
            messages_in_bucket: p(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE app = ? AND chat = ? AND bucket = ? \
                 AND number < ? AND number > ? LIMIT ?"
            ))
            .await?,
            buckets_between: p("SELECT bucket FROM chat_buckets WHERE app = ? AND chat = ? \
                 AND bucket <= ? AND bucket >= ? LIMIT ?"
                .into())
            .await?,
            newest_bucket: p("SELECT bucket FROM chat_buckets WHERE app = ? AND chat = ? LIMIT 1".into()).await?,
            member: p("SELECT joined_at, role FROM members WHERE app = ? AND chat = ? AND user_id = ?".into()).await?,
            set_role: p("UPDATE members SET role = ? WHERE app = ? AND chat = ? AND user_id = ? IF EXISTS".into()).await?,
            members: p("SELECT user_id, joined_at, role FROM members WHERE app = ? AND chat = ? LIMIT ?".into()).await?,
            user_chats: p("SELECT chat FROM user_chats WHERE app = ? AND user_id = ? LIMIT ?".into()).await?,
            direct_chat: p(DIRECT_CHAT.into()).await?,
            claim_direct_chat: p("INSERT INTO direct_chats (app, user_low, user_high, chat) VALUES (?, ?, ?, ?) \
                 IF NOT EXISTS"
                .into())
            .await?,
            direct_chat_serial: {
                let mut read = p(DIRECT_CHAT.into()).await?;
                read.set_consistency(Consistency::Serial);
                read
            },
            advance_delivered: p("UPDATE read_state USING TIMESTAMP ? SET delivered = ? \
                 WHERE app = ? AND chat = ? AND user_id = ?"
                .into())
            .await?,
            advance_read: p("UPDATE read_state USING TIMESTAMP ? SET delivered = ?, read = ? \
                 WHERE app = ? AND chat = ? AND user_id = ?"
                .into())
            .await?,
            read_state: p(format!("{READ_STATE} AND user_id = ?")).await?,
            read_states: p(format!("{READ_STATE} LIMIT ?")).await?,
            insert_attachment: p("INSERT INTO attachments (app, id, chat, name, content_type, size, created_by, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                .into())
            .await?,
            attachment: p("SELECT chat, name, content_type, size, created_by, created_at, message \
                 FROM attachments WHERE app = ? AND id = ?"
                .into())
            .await?,
            attach: p("UPDATE attachments SET message = ? WHERE app = ? AND id = ? IF message = null AND chat = ?".into())
                .await?,
            detach: p("UPDATE attachments SET message = null WHERE app = ? AND id = ? IF message = ?".into()).await?,
            delete_attachment: p("DELETE FROM attachments WHERE app = ? AND id = ?".into()).await?,
            insert_webhook: p("INSERT INTO webhooks (app, id, url, events, secret, previous_secret, previous_until, \
                 created_at, disabled_at, disabled_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                .into())
            .await?,
            webhook: p(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE app = ? AND id = ?")).await?,
            webhooks: p(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE app = ? ORDER BY id ASC")).await?,
            update_webhook: p("UPDATE webhooks SET url = ?, events = ?, secret = ?, previous_secret = ?, \
                 previous_until = ?, disabled_at = ?, disabled_reason = ? WHERE app = ? AND id = ? IF EXISTS"
                .into())
            .await?,
            delete_webhook: p("DELETE FROM webhooks WHERE app = ? AND id = ? IF EXISTS".into()).await?,
            insert_device: p("INSERT INTO devices (app, user_id, id, provider, \"token\", created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
                .into())
            .await?,
            update_device: p("UPDATE devices SET provider = ?, \"token\" = ?, updated_at = ? \
                 WHERE app = ? AND user_id = ? AND id = ? IF EXISTS"
                .into())
            .await?,
            devices: p(format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE app = ? AND user_id = ? ORDER BY id ASC"
            ))
            .await?,
            delete_device: p("DELETE FROM devices WHERE app = ? AND user_id = ? AND id = ? IF EXISTS".into()).await?,
            notification_settings: p(format!(
                "SELECT {SETTINGS_COLUMNS} FROM notification_settings WHERE app = ? AND user_id = ?"
            ))
            .await?,
            put_notification_settings: p("INSERT INTO notification_settings (app, user_id, email, email_address, \
                 push, chats, quiet_from, quiet_to, quiet_tz, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                .into())
            .await?,
            insert_auth_session: p(format!(
                "INSERT INTO auth_sessions ({AUTH_SESSION_COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            insert_user_auth_session: p("INSERT INTO user_auth_sessions (app, user_id, id) VALUES (?, ?, ?)".into())
                .await?,
            auth_session: p(format!("SELECT {AUTH_SESSION_COLUMNS} FROM auth_sessions WHERE id = ?")).await?,
            user_auth_sessions: p("SELECT id FROM user_auth_sessions WHERE app = ? AND user_id = ?".into()).await?,
            replace_auth_session: p("UPDATE auth_sessions SET ip = ?, user_agent = ?, last_seen_at = ?, \
                 expires_at = ?, generation = ?, refresh_hash = ?, rotated = ?, confirmed = ?, version = ? \
                 WHERE id = ? IF version = ?"
                .into())
            .await?,
            delete_auth_session: p("DELETE FROM auth_sessions WHERE id = ? IF EXISTS".into()).await?,
            delete_user_auth_session: p("DELETE FROM user_auth_sessions WHERE app = ? AND user_id = ? AND id = ?".into())
                .await?,
            add_member: logged_batch(vec![insert_member.await?, insert_user_chat.await?]),
            remove_member: logged_batch(vec![delete_member.await?, delete_user_chat.await?]),
        })
    }
}

/// Prepares one statement. Every statement weft runs is idempotent (plain
/// upserts, deletes and reads), which lets the driver retry them after a timeout.
async fn prepare(session: &Session, cql: String) -> Result<PreparedStatement, StoreError> {
    let mut statement = session.prepare(cql).await.map_err(StoreError::unavailable)?;
    statement.set_is_idempotent(true);
    Ok(statement)
}

/// A LOGGED batch of prepared statements (for mirror rows that must not diverge).
fn logged_batch(statements: Vec<PreparedStatement>) -> Batch {
    let mut batch = Batch::new_with_statements(
        BatchType::Logged,
        statements.into_iter().map(BatchStatement::PreparedStatement).collect(),
    );
    batch.set_is_idempotent(true);
    batch
}
