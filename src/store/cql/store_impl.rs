//! `impl Store for CqlStore`: the queries behind every store call.

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::value::{CqlTimestamp, CqlValue, Row};

use super::CqlStore;
use super::batches::{PartitionKey, group_by_partition, split_batches};
use super::rows::{
    ApplicationRow, ChatRow, MessageRow, application_from_row, bigint, bigint_bound, chat_from_row,
    cql_limit, decode_first, decode_rows, from_ts, message_from_row, message_values, metadata_text,
    skip_page, ts, unset_if_none, unsigned,
};
use crate::auth::{AuthSession, AuthSessionId};
use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use crate::model::{
    Application, Attachment, Change, Chat, Device, DirectPair, Member, Message, MessageRange, MessageVersion,
    NotificationSettings, Page, Reactions, ReadState, ReceiptKind, Role, UserGroups, Webhook,
};
use crate::store::{Store, StoreError, bucket_of};

/// Attempts of a conditional update that lost to a concurrent one.
pub(super) const CONDITIONAL_TRIES: usize = 5;

/// A conditional update kept losing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Contended(pub(super) &'static str);

/// Whether a conditional statement applied (the first column of its answer).
pub(super) fn applied(
    result: scylla::response::query_result::QueryResult,
    what: &'static str,
) -> Result<bool, StoreError> {
    Ok(decode_first::<Row>(result, what)?
        .and_then(|row| row.columns.into_iter().next().flatten())
        .is_some_and(|v| matches!(v, CqlValue::Boolean(true))))
}

/// How many partitions one `insert_messages` call writes at the same time.
const MAX_CONCURRENT_PARTITIONS: usize = 32;

/// How many bucket numbers one read of `chat_buckets` returns.
const BUCKET_LIST_PAGE: usize = 32;

/// The bounds of a message listing, as CQL values.
struct Window {
    /// Only numbers strictly below (`i64::MAX` when unbounded).
    below: i64,
    /// Only numbers strictly above (-1 when unbounded).
    above: i64,
    /// The highest bucket that can hold a match, when `before` is given.
    top_bucket: Option<u64>,
    /// The lowest bucket that can hold a match.
    bottom_bucket: u64,
}

impl Window {
    /// The window of a range, or `None` when no number can match.
    fn of(range: &MessageRange) -> Option<Window> {
        let lowest = match range.after {
            Some(after) => after.get().checked_add(1)?,
            None => 0,
        };
        let highest = match range.before {
            Some(before) => Some(before.get().checked_sub(1)?),
            None => None,
        };
        if highest.is_some_and(|h| h < lowest) {
            return None;
        }
        Some(Window {
            below: range.before.map_or(i64::MAX, |b| bigint_bound(b.get())),
            above: range.after.map_or(-1, |a| bigint_bound(a.get())),
            top_bucket: highest.map(|h| bucket_of(MessageNumber(h))),
            bottom_bucket: bucket_of(MessageNumber(lowest)),
        })
    }
}

impl CqlStore {
    /// Writes one partition's messages: its `chat_buckets` row first, unless
    /// already written (so a stored message's bucket is always listed), then
    /// its batches concurrently.
    async fn insert_partition(
        &self,
        key: PartitionKey<'_>,
        messages: Vec<&Message>,
    ) -> Result<(), StoreError> {
        self.list_bucket(key).await?;
        let batches = split_batches(&messages);
        futures::future::try_join_all(batches.iter().map(|batch| self.insert_batch(batch))).await?;
        Ok(())
    }

    /// Lists `reply` under its parent and moves the parent's count and newest
    /// reply time (written with the count and the time as their timestamps,
    /// so concurrent replies leave the highest of each).
    async fn list_reply(&self, reply: &Message) -> Result<(), StoreError> {
        let Some(parent) = reply.reply_to else { return Ok(()) };
        // An update of a row that is not there would make one up (a row with
        // only counters): a reply names a stored message, but check.
        if self.message(&reply.app, reply.chat, parent).await?.is_none() {
            return Ok(());
        }
        let (app, chat) = (reply.app.as_str(), bigint(reply.chat.get())?);
        let (p, n) = (bigint(parent.get())?, bigint(reply.number.get())?);
        let session = self.session();
        let stmts = self.stmts();
        let err = StoreError::unavailable;
        session.execute_unpaged(&stmts.insert_thread_reply, (app, chat, p, n)).await.map_err(err)?;
        let counted =
            session.execute_unpaged(&stmts.count_thread_replies, (app, chat, p)).await.map_err(err)?;
        let count = decode_first::<(i64,)>(counted, "thread_replies count")?.map_or(0, |(c,)| c);
        let bucket = bigint(bucket_of(parent))?;
        let values = (count, count, app, chat, bucket, p);
        session.execute_unpaged(&stmts.set_reply_count, values).await.map_err(err)?;
        let values = (reply.created_at.millis(), ts(reply.created_at), app, chat, bucket, p);
        session.execute_unpaged(&stmts.set_last_reply_at, values).await.map_err(err)?;
        Ok(())
    }

    /// Makes sure a bucket is listed in `chat_buckets`.
    async fn list_bucket(&self, (app, chat, bucket): PartitionKey<'_>) -> Result<(), StoreError> {
        let key = (app.clone(), chat.get(), bucket);
        if self.inner.known_buckets.contains(&key) {
            return Ok(());
        }
        self.session()
            .execute_unpaged(
                &self.stmts().insert_chat_bucket,
                (app.as_str(), bigint(chat.get())?, bigint(bucket)?),
            )
            .await
            .map_err(StoreError::unavailable)?;
        self.inner.known_buckets.insert(key);
        Ok(())
    }

    /// Writes messages of one partition in one UNLOGGED batch (a lone message
    /// as a plain statement, which no batch size limit applies to).
    async fn insert_batch(&self, messages: &[&Message]) -> Result<(), StoreError> {
        let insert = &self.stmts().insert_message;
        let values = messages.iter().map(|m| message_values(m)).collect::<Result<Vec<_>, _>>()?;
        let result = match values.as_slice() {
            [single] => self.session().execute_unpaged(insert, single).await,
            _ => {
                let statements = vec![BatchStatement::PreparedStatement(insert.clone()); values.len()];
                let mut batch = Batch::new_with_statements(BatchType::Unlogged, statements);
                batch.set_is_idempotent(true);
                self.session().batch(&batch, &values).await
            }
        };
        result.map(drop).map_err(StoreError::unavailable)
    }

    /// The newest bucket of a chat that holds messages.
    async fn newest_bucket(&self, app: &AppId, chat: ChatNumber) -> Result<Option<u64>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().newest_bucket, (app.as_str(), bigint(chat.get())?))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<(i64,)>(result, "chat_buckets")?.map(|(b,)| unsigned(b, "bucket")).transpose()
    }

    /// Up to `BUCKET_LIST_PAGE` buckets of a chat in `[bottom, top]`, newest first.
    async fn buckets_between(
        &self,
        app: &AppId,
        chat: ChatNumber,
        top: u64,
        bottom: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let values = (
            app.as_str(),
            bigint(chat.get())?,
            bigint_bound(top),
            bigint_bound(bottom),
            cql_limit(BUCKET_LIST_PAGE),
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().buckets_between, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_rows::<(i64,)>(result, "chat_buckets")?.into_iter().map(|(b,)| unsigned(b, "bucket")).collect()
    }

    /// Up to `limit` messages of one bucket inside the window, newest first.
    async fn messages_in_bucket(
        &self,
        app: &AppId,
        chat: ChatNumber,
        bucket: u64,
        window: &Window,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let values = (
            app.as_str(),
            bigint(chat.get())?,
            bigint(bucket)?,
            window.below,
            window.above,
            cql_limit(limit),
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().messages_in_bucket, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_rows::<MessageRow>(result, "messages")?
            .into_iter()
            .map(|row| message_from_row(app, chat, row))
            .collect()
    }

    /// Reads a member row's join time.
    async fn joined_at(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.member(app, chat, user).await?.map(|m| m.joined_at))
    }
}

#[async_trait]
impl Store for CqlStore {
    async fn insert_application(&self, app: &Application) -> Result<(), StoreError> {
        let values = (
            app.token.as_str(),
            app.id.as_str(),
            app.name.as_str(),
            app.secret.expose(),
            unset_if_none(app.jwks_url.as_deref()),
            unset_if_none((app.user_groups != UserGroups::Open).then_some(app.user_groups.as_str())),
            ts(app.created_at),
            ts(app.updated_at),
            unset_if_none(app.description.as_deref()),
            unset_if_none(metadata_text(&app.metadata)),
        );
        // The id row first: an application is only reachable by token once both exist.
        self.session()
            .execute_unpaged(&self.stmts().insert_application_id, (app.id.as_str(), app.token.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        self.session()
            .execute_unpaged(&self.stmts().insert_application, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn application_by_token(&self, token: &AppToken) -> Result<Option<Application>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().application_by_token, (token.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<ApplicationRow>(result, "applications")?.map(application_from_row).transpose()
    }

    async fn application_by_id(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().application_token_by_id, (id.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        match decode_first::<(String,)>(result, "applications_by_id")? {
            Some((token,)) => self.application_by_token(&AppToken::new(token)).await,
            None => Ok(None),
        }
    }

    async fn application_ids(&self, after: Option<&AppId>, limit: usize) -> Result<Vec<AppId>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = cql_limit(limit);
        let stmts = self.stmts();
        let result = match after {
            Some(after) => {
                self.session().execute_unpaged(&stmts.application_ids_after, (after.as_str(), limit)).await
            }
            None => self.session().execute_unpaged(&stmts.application_ids, (limit,)).await,
        }
        .map_err(StoreError::unavailable)?;
        Ok(decode_rows::<(String,)>(result, "applications_by_id")?
            .into_iter()
            .map(|(id,)| AppId::new(id))
            .collect())
    }

    /// An upsert of name, secret and updated_at: callers update applications they have read.
    async fn update_application(&self, app: &Application) -> Result<(), StoreError> {
        let values = (
            app.name.as_str(),
            app.secret.expose(),
            app.jwks_url.as_deref(),
            app.user_groups.as_str(),
            ts(app.updated_at),
            app.description.as_deref(),
            metadata_text(&app.metadata),
            app.token.as_str(),
        );
        self.session()
            .execute_unpaged(&self.stmts().update_application, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn insert_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        let values = (
            chat.app.as_str(),
            bigint(chat.number.get())?,
            chat.kind.as_str(),
            ts(chat.created_at),
            unset_if_none(chat.name.as_deref()),
            unset_if_none(chat.description.as_deref()),
            unset_if_none(metadata_text(&chat.metadata)),
            unset_if_none(chat.created_by.as_ref().map(UserId::as_str)),
            unset_if_none((chat.updated_at != chat.created_at).then(|| ts(chat.updated_at))),
        );
        self.session()
            .execute_unpaged(&self.stmts().insert_chat, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn update_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        let values = (
            chat.name.as_deref(),
            chat.description.as_deref(),
            metadata_text(&chat.metadata),
            ts(chat.updated_at),
            chat.app.as_str(),
            bigint(chat.number.get())?,
        );
        self.session()
            .execute_unpaged(&self.stmts().update_chat, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn chat(&self, app: &AppId, number: ChatNumber) -> Result<Option<Chat>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().chat, (app.as_str(), bigint(number.get())?))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<ChatRow>(result, "chats")?.map(|row| chat_from_row(app, row)).transpose()
    }

    async fn chats(&self, app: &AppId, page: Page) -> Result<Vec<Chat>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (app.as_str(), cql_limit(page.skip.saturating_add(page.limit)));
        let result = self
            .session()
            .execute_unpaged(&self.stmts().chats, values)
            .await
            .map_err(StoreError::unavailable)?;
        let rows = skip_page(decode_rows::<ChatRow>(result, "chats")?, page);
        rows.into_iter().map(|row| chat_from_row(app, row)).collect()
    }

    async fn max_chat_number(&self, app: &AppId) -> Result<u64, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().max_chat, (app.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<(i64,)>(result, "chats")?.map_or(Ok(0), |(n,)| unsigned(n, "chat number"))
    }

    fn chats_commit_apart(&self) -> bool {
        true
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<(), StoreError> {
        // Built eagerly: a stream `map` closure here trips the compiler's
        // higher-ranked lifetime check on the `Send` future async_trait needs.
        let writes: Vec<_> = group_by_partition(messages)
            .into_iter()
            .map(|(key, group)| self.insert_partition(key, group))
            .collect();
        futures::stream::iter(writes).buffer_unordered(MAX_CONCURRENT_PARTITIONS).try_collect::<()>().await?;
        // Threads, once the replies are written (a retried batch lists and counts nothing twice).
        let threads: Vec<_> =
            messages.iter().filter(|m| m.reply_to.is_some()).map(|m| self.list_reply(m)).collect();
        futures::stream::iter(threads).buffer_unordered(MAX_CONCURRENT_PARTITIONS).try_collect::<()>().await
    }

    async fn message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Option<Message>, StoreError> {
        // A number above the column's range names no message (a client's
        // `reply_to`, a path), rather than corrupt data.
        let Ok(wanted) = bigint(number.get()) else { return Ok(None) };
        let values = (app.as_str(), bigint(chat.get())?, bigint(bucket_of(number))?, wanted);
        let result = self
            .session()
            .execute_unpaged(&self.stmts().message, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<MessageRow>(result, "messages")?
            .map(|row| message_from_row(app, chat, row))
            .transpose()
    }

    async fn edit_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        body: &str,
        at: Timestamp,
    ) -> Result<Change, StoreError> {
        let Ok(n) = bigint(number.get()) else { return Ok(Change::Missing) };
        let (c, b) = (bigint(chat.get())?, bigint(bucket_of(number))?);
        // The update holds only if the body is still the one read (else
        // another edit came first and its body is the version to keep): read again.
        for _ in 0..CONDITIONAL_TRIES {
            let Some(current) = self.message(app, chat, number).await? else { return Ok(Change::Missing) };
            if current.is_deleted() {
                return Ok(Change::Deleted(current));
            }
            let written = current.edited_at.unwrap_or(current.created_at);
            let version = vec![(current.body.as_str(), ts(written), ts(at))];
            let values = (body, ts(at), version, app.as_str(), c, b, n, current.body.as_str());
            let result = self
                .session()
                .execute_unpaged(&self.stmts().edit_message, values)
                .await
                .map_err(StoreError::unavailable)?;
            if applied(result, "messages edit")? {
                let edited = Message { body: body.to_owned(), edited_at: Some(at), ..current };
                return Ok(Change::Done(edited));
            }
        }
        Err(StoreError::Unavailable(Box::new(Contended("an edit kept losing to concurrent edits"))))
    }

    async fn delete_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        at: Timestamp,
    ) -> Result<Change, StoreError> {
        let Ok(n) = bigint(number.get()) else { return Ok(Change::Missing) };
        let (c, b) = (bigint(chat.get())?, bigint(bucket_of(number))?);
        for _ in 0..CONDITIONAL_TRIES {
            // Read first: a conditional update of a row that is not there would create one.
            let Some(current) = self.message(app, chat, number).await? else { return Ok(Change::Missing) };
            if current.is_deleted() {
                return Ok(Change::Deleted(current));
            }
            let result = self
                .session()
                .execute_unpaged(&self.stmts().delete_message, (ts(at), app.as_str(), c, b, n))
                .await
                .map_err(StoreError::unavailable)?;
            if applied(result, "messages delete")? {
                let tombstone = Message {
                    body: String::new(),
                    deleted_at: Some(at),
                    attachments: Vec::new(),
                    reactions: Reactions::default(),
                    ..current
                };
                return Ok(Change::Done(tombstone));
            }
        }
        Err(StoreError::Unavailable(Box::new(Contended("a delete kept losing to concurrent changes"))))
    }

    async fn set_reaction(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        emoji: &str,
        user: &UserId,
        on: bool,
    ) -> Result<Change, StoreError> {
        let Ok(n) = bigint(number.get()) else { return Ok(Change::Missing) };
        let (c, b) = (bigint(chat.get())?, bigint(bucket_of(number))?);
        // Read first: a conditional update of a row that is not there would create one.
        let Some(current) = self.message(app, chat, number).await? else { return Ok(Change::Missing) };
        if current.is_deleted() {
            return Ok(Change::Deleted(current));
        }
        if current.reactions.has(emoji, user) == on {
            return Ok(Change::Done(current));
        }
        let stmt = if on { &self.stmts().add_reaction } else { &self.stmts().remove_reaction };
        let pair = vec![(emoji, user.as_str())];
        let result = self
            .session()
            .execute_unpaged(stmt, (pair, app.as_str(), c, b, n))
            .await
            .map_err(StoreError::unavailable)?;
        // Not applied: deleted meanwhile. Either way the row as it is now
        // (with whatever else changed concurrently) is the answer.
        let applied = applied(result, "messages reaction")?;
        match self.message(app, chat, number).await? {
            None => Ok(Change::Missing),
            Some(m) if m.is_deleted() || !applied => Ok(Change::Deleted(m)),
            Some(m) => Ok(Change::Done(m)),
        }
    }

    async fn replies(
        &self,
        app: &AppId,
        chat: ChatNumber,
        parent: MessageNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let Ok(p) = bigint(parent.get()) else { return Ok(Vec::new()) };
        let values = (app.as_str(), bigint(chat.get())?, p, bigint_bound(after.get()), cql_limit(limit));
        let result = self
            .session()
            .execute_unpaged(&self.stmts().thread_replies, values)
            .await
            .map_err(StoreError::unavailable)?;
        let numbers = decode_rows::<(i64,)>(result, "thread_replies")?;
        let mut out = Vec::with_capacity(numbers.len());
        for (n,) in numbers {
            if let Some(m) = self.message(app, chat, MessageNumber(unsigned(n, "reply number")?)).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn message_versions(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Vec<MessageVersion>, StoreError> {
        let Ok(n) = bigint(number.get()) else { return Ok(Vec::new()) };
        let values = (app.as_str(), bigint(chat.get())?, bigint(bucket_of(number))?, n);
        let result = self
            .session()
            .execute_unpaged(&self.stmts().message_versions, values)
            .await
            .map_err(StoreError::unavailable)?;
        type Versions = Option<Vec<(String, CqlTimestamp, CqlTimestamp)>>;
        let versions = decode_first::<(Versions,)>(result, "message versions")?.and_then(|(v,)| v);
        Ok(versions
            .unwrap_or_default()
            .into_iter()
            .map(|(body, written_at, replaced_at)| MessageVersion {
                body,
                written_at: from_ts(written_at),
                replaced_at: from_ts(replaced_at),
            })
            .collect())
    }

    /// Walks the chat's buckets from the newest one that can match downwards,
    /// reading each bucket's matches newest first, until `skip + limit`
    /// messages are found or the buckets run out.
    async fn messages(
        &self,
        app: &AppId,
        chat: ChatNumber,
        range: MessageRange,
    ) -> Result<Vec<Message>, StoreError> {
        let wanted = range.page.skip.saturating_add(range.page.limit);
        let Some(window) = Window::of(&range).filter(|_| range.page.limit > 0) else {
            return Ok(Vec::new());
        };
        let top = match window.top_bucket {
            Some(top) => Some(top),
            None => self.newest_bucket(app, chat).await?,
        };
        let mut found = Vec::new();
        let mut next_top = top.filter(|&t| t >= window.bottom_bucket);
        while let Some(top) = next_top {
            let buckets = self.buckets_between(app, chat, top, window.bottom_bucket).await?;
            next_top = match buckets.last() {
                Some(&last) if buckets.len() == BUCKET_LIST_PAGE && last > window.bottom_bucket => {
                    Some(last - 1)
                }
                _ => None,
            };
            for bucket in buckets {
                let rows = self.messages_in_bucket(app, chat, bucket, &window, wanted - found.len()).await?;
                found.extend(rows);
                if found.len() >= wanted {
                    return Ok(skip_page(found, range.page));
                }
            }
        }
        Ok(skip_page(found, range.page))
    }

    async fn max_message_number(&self, app: &AppId, chat: ChatNumber) -> Result<u64, StoreError> {
        let newest = MessageRange { before: None, after: None, page: Page { skip: 0, limit: 1 } };
        let messages = self.messages(app, chat, newest).await?;
        Ok(messages.first().map_or(0, |m| m.number.get()))
    }

    /// Reads first and writes only when absent, so the first join time stays;
    /// two racing first joins both write, and either join time may win.
    async fn add_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if self.joined_at(app, chat, user).await?.is_some() {
            return Ok(());
        }
        let chat = bigint(chat.get())?;
        // A plain member's role stays unset: null reads as `member`.
        let role = unset_if_none((role != Role::Member).then_some(role.as_str()));
        let member = (app.as_str(), chat, user.as_str(), ts(at), role);
        let mirror = (app.as_str(), user.as_str(), chat, ts(at));
        self.session()
            .batch(&self.stmts().add_member, (member, mirror))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn remove_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        if self.joined_at(app, chat, user).await?.is_none() {
            return Ok(false);
        }
        let chat = bigint(chat.get())?;
        let member = (app.as_str(), chat, user.as_str());
        let mirror = (app.as_str(), user.as_str(), chat);
        self.session()
            .batch(&self.stmts().remove_member, (member, mirror))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(true)
    }

    async fn members(&self, app: &AppId, chat: ChatNumber, page: Page) -> Result<Vec<Member>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (app.as_str(), bigint(chat.get())?, cql_limit(page.skip.saturating_add(page.limit)));
        let result = self
            .session()
            .execute_unpaged(&self.stmts().members, values)
            .await
            .map_err(StoreError::unavailable)?;
        let rows = decode_rows::<(String, Option<CqlTimestamp>, Option<String>)>(result, "members")?;
        // A row without a join time is no member (see `member`).
        let rows = rows.into_iter().filter_map(|(user, at, role)| Some((user, at?, role))).collect();
        skip_page(rows, page)
            .into_iter()
            .map(|(user, joined_at, role)| {
                Ok(Member {
                    user: UserId::from_store(user),
                    joined_at: from_ts(joined_at),
                    role: role_from(role)?,
                })
            })
            .collect()
    }

    async fn member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().member, (app.as_str(), bigint(chat.get())?, user.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        // A row with a role but no join time is no member: a role change
        // (a lightweight transaction, timestamped by its Paxos ballot) racing
        // a removal on a node whose clock runs behind may outlive the removal's
        // tombstone in that one cell.
        let Some((Some(at), role)) =
            decode_first::<(Option<CqlTimestamp>, Option<String>)>(result, "members")?
        else {
            return Ok(None);
        };
        Ok(Some(Member { user: user.clone(), joined_at: from_ts(at), role: role_from(role)? }))
    }

    async fn set_role(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
    ) -> Result<bool, StoreError> {
        let values = (role.as_str(), app.as_str(), bigint(chat.get())?, user.as_str());
        let result = self
            .session()
            .execute_unpaged(&self.stmts().set_role, values)
            .await
            .map_err(StoreError::unavailable)?;
        applied(result, "members")
    }

    async fn is_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        Ok(self.joined_at(app, chat, user).await?.is_some())
    }

    async fn user_chats(
        &self,
        app: &AppId,
        user: &UserId,
        page: Page,
    ) -> Result<Vec<ChatNumber>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (app.as_str(), user.as_str(), cql_limit(page.skip.saturating_add(page.limit)));
        let result = self
            .session()
            .execute_unpaged(&self.stmts().user_chats, values)
            .await
            .map_err(StoreError::unavailable)?;
        skip_page(decode_rows::<(i64,)>(result, "user_chats")?, page)
            .into_iter()
            .map(|(n,)| unsigned(n, "chat number").map(ChatNumber))
            .collect()
    }

    async fn direct_chat(&self, app: &AppId, pair: &DirectPair) -> Result<Option<ChatNumber>, StoreError> {
        self.read_direct_chat(&self.stmts().direct_chat, app, pair).await
    }

    async fn claim_direct_chat(
        &self,
        app: &AppId,
        pair: &DirectPair,
        chat: ChatNumber,
    ) -> Result<ChatNumber, StoreError> {
        let [low, high] = pair.users();
        let values = (app.as_str(), low.as_str(), high.as_str(), bigint(chat.get())?);
        let result = self
            .session()
            .execute_unpaged(&self.stmts().claim_direct_chat, values)
            .await
            .map_err(StoreError::unavailable)?;
        // The first column of an LWT answer is `[applied]`.
        let applied = decode_first::<Row>(result, "direct_chats claim")?
            .and_then(|row| row.columns.into_iter().next().flatten())
            .is_some_and(|v| matches!(v, CqlValue::Boolean(true)));
        if applied {
            return Ok(chat);
        }
        self.read_direct_chat(&self.stmts().direct_chat_serial, app, pair)
            .await?
            .ok_or(StoreError::Corrupt { what: "direct_chats claim lost to a row that is not there" })
    }

    async fn advance_read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        kind: ReceiptKind,
        seq: MessageNumber,
    ) -> Result<(), StoreError> {
        let n = bigint(seq.get())?;
        let key = (app.as_str(), bigint(chat.get())?, user.as_str());
        let outcome = match kind {
            ReceiptKind::Delivered => {
                self.session()
                    .execute_unpaged(&self.stmts().advance_delivered, (n, n, key.0, key.1, key.2))
                    .await
            }
            ReceiptKind::Read => {
                self.session()
                    .execute_unpaged(&self.stmts().advance_read, (n, n, n, key.0, key.1, key.2))
                    .await
            }
        };
        outcome.map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<ReadState>, StoreError> {
        let values = (app.as_str(), bigint(chat.get())?, user.as_str());
        let result = self
            .session()
            .execute_unpaged(&self.stmts().read_state, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<ReadStateRow>(result, "read_state")?.map(read_state_from_row).transpose()
    }

    async fn read_states(
        &self,
        app: &AppId,
        chat: ChatNumber,
        page: Page,
    ) -> Result<Vec<ReadState>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (app.as_str(), bigint(chat.get())?, cql_limit(page.skip.saturating_add(page.limit)));
        let result = self
            .session()
            .execute_unpaged(&self.stmts().read_states, values)
            .await
            .map_err(StoreError::unavailable)?;
        skip_page(decode_rows::<ReadStateRow>(result, "read_state")?, page)
            .into_iter()
            .map(read_state_from_row)
            .collect()
    }

    async fn insert_attachment(&self, attachment: &Attachment) -> Result<(), StoreError> {
        self.insert_attachment_row(attachment).await
    }

    async fn attachment(&self, app: &AppId, id: &AttachmentId) -> Result<Option<Attachment>, StoreError> {
        self.attachment_row(app, id).await
    }

    async fn attach(
        &self,
        app: &AppId,
        id: &AttachmentId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<bool, StoreError> {
        self.attach_row(app, id, chat, number).await
    }

    async fn detach(&self, app: &AppId, id: &AttachmentId, number: MessageNumber) -> Result<(), StoreError> {
        self.detach_row(app, id, number).await
    }

    async fn delete_attachment(&self, app: &AppId, id: &AttachmentId) -> Result<(), StoreError> {
        self.delete_attachment_row(app, id).await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.insert_webhook_row(webhook).await
    }

    async fn webhook(&self, app: &AppId, id: &WebhookId) -> Result<Option<Webhook>, StoreError> {
        self.webhook_row(app, id).await
    }

    async fn webhooks(&self, app: &AppId) -> Result<Vec<Webhook>, StoreError> {
        self.webhook_rows(app).await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.update_webhook_row(webhook).await
    }

    async fn delete_webhook(&self, app: &AppId, id: &WebhookId) -> Result<bool, StoreError> {
        self.delete_webhook_row(app, id).await
    }

    async fn put_device(&self, device: &Device) -> Result<(), StoreError> {
        self.put_device_row(device).await
    }

    async fn devices(&self, app: &AppId, user: &UserId) -> Result<Vec<Device>, StoreError> {
        self.device_rows(app, user).await
    }

    async fn delete_device(&self, app: &AppId, user: &UserId, id: &DeviceId) -> Result<bool, StoreError> {
        self.delete_device_row(app, user, id).await
    }

    async fn notification_settings(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        self.settings_row(app, user).await
    }

    async fn put_notification_settings(&self, settings: &NotificationSettings) -> Result<(), StoreError> {
        self.put_settings_row(settings).await
    }

    async fn insert_auth_session(&self, session: &AuthSession) -> Result<(), StoreError> {
        self.insert_auth_session_row(session).await
    }

    async fn auth_session(&self, id: &AuthSessionId) -> Result<Option<AuthSession>, StoreError> {
        self.auth_session_row(id).await
    }

    async fn auth_sessions(&self, app: &AppId, user: &UserId) -> Result<Vec<AuthSession>, StoreError> {
        self.auth_session_rows(app, user).await
    }

    async fn replace_auth_session(&self, session: &AuthSession, expected: u64) -> Result<bool, StoreError> {
        self.replace_auth_session_row(session, expected).await
    }

    async fn delete_auth_session(
        &self,
        app: &AppId,
        user: &UserId,
        id: &AuthSessionId,
    ) -> Result<bool, StoreError> {
        self.delete_auth_session_row(app, user, id).await
    }
}

type ReadStateRow = (String, Option<i64>, Option<i64>);

/// A stored role; null (rows from before roles) reads as `member`.
fn role_from(role: Option<String>) -> Result<Role, StoreError> {
    match role.as_deref() {
        None => Ok(Role::Member),
        Some(name) => Role::parse(name).ok_or(StoreError::Corrupt { what: "member role" }),
    }
}

fn read_state_from_row((user, delivered, read): ReadStateRow) -> Result<ReadState, StoreError> {
    let position = |n: Option<i64>| unsigned(n.unwrap_or(0), "read_state position").map(MessageNumber);
    Ok(ReadState { user: UserId::from_store(user), delivered: position(delivered)?, read: position(read)? })
}

impl CqlStore {
    async fn read_direct_chat(
        &self,
        statement: &scylla::statement::prepared::PreparedStatement,
        app: &AppId,
        pair: &DirectPair,
    ) -> Result<Option<ChatNumber>, StoreError> {
        let [low, high] = pair.users();
        let result = self
            .session()
            .execute_unpaged(statement, (app.as_str(), low.as_str(), high.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<(i64,)>(result, "direct_chats")?
            .map(|(n,)| unsigned(n, "direct chat number").map(ChatNumber))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MESSAGE_BUCKET;

    #[test]
    fn windows_bound_numbers_and_buckets() {
        let page = Page { skip: 0, limit: 10 };
        let range = |before: Option<u64>, after: Option<u64>| MessageRange {
            before: before.map(MessageNumber),
            after: after.map(MessageNumber),
            page,
        };
        let w = Window::of(&range(Some(1025), Some(3)))
            .map(|w| (w.below, w.above, w.top_bucket, w.bottom_bucket));
        assert_eq!(w, Some((1025, 3, Some(1), 0)));
        let w = Window::of(&range(None, Some(MESSAGE_BUCKET - 1))).map(|w| (w.top_bucket, w.bottom_bucket));
        assert_eq!(w, Some((None, 1)));
        assert!(Window::of(&range(Some(0), None)).is_none());
        assert!(Window::of(&range(Some(5), Some(4))).is_none());
        assert!(Window::of(&range(None, Some(u64::MAX))).is_none());
        assert!(Window::of(&range(Some(6), Some(4))).is_some());
    }
}
