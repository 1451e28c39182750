//! `weft import`: a checking pass that writes nothing, then a writing pass
//! (see the module above for why, and what a failure leaves).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::format::{FullMessage, Header, Record};
use super::{InputError, Summary, TransferError};
use crate::ids::{AppId, ChatNumber, MessageNumber};
use crate::model::{
    Application, Attachment, Change, Chat, Device, DirectPair, Member, Message, MessageRange,
    NotificationSettings, Reactions, ReadState, ReceiptKind, Webhook,
};
use crate::sequence::Numbering;
use crate::store::DynStore;

/// Messages written per `insert_messages` call.
const BATCH: usize = 256;

/// One record, checked and turned into the model.
enum Item {
    App(Box<Application>, u64),
    Webhook(Webhook),
    Chat(Chat, Option<DirectPair>, u64),
    Member(AppId, ChatNumber, Member),
    Message(Box<FullMessage>),
    Attachment(Attachment),
    Receipt(AppId, ChatNumber, ReadState),
    Device(Device),
    Settings(NotificationSettings),
    End,
}

/// Reads and checks an export a line at a time.
struct Reader {
    lines: BufReader<File>,
    path: PathBuf,
    buf: String,
    line: u64,
    /// The application's id and chat counter.
    app: Option<(AppId, u64)>,
    /// The current chat and its message counter.
    chat: Option<(ChatNumber, u64)>,
    seq: u64,
    records: u64,
    ended: bool,
}

impl Reader {
    /// Opens `path` and checks its header.
    fn open(path: &Path) -> Result<Reader, TransferError> {
        let file =
            File::open(path).map_err(|source| TransferError::Read { path: path.to_owned(), source })?;
        let mut reader = Reader {
            lines: BufReader::new(file),
            path: path.to_owned(),
            buf: String::new(),
            line: 0,
            app: None,
            chat: None,
            seq: 0,
            records: 0,
            ended: false,
        };
        if !reader.read_line()? {
            return Err(reader.fail(InputError::Truncated));
        }
        let header: Header =
            serde_json::from_str(&reader.buf).map_err(|e| reader.fail(InputError::Header(e)))?;
        if header.format != super::FORMAT || header.version != super::VERSION {
            return Err(reader.fail(InputError::Version { format: header.format, version: header.version }));
        }
        Ok(reader)
    }

    fn read_line(&mut self) -> Result<bool, TransferError> {
        self.buf.clear();
        let n = self
            .lines
            .read_line(&mut self.buf)
            .map_err(|source| TransferError::Read { path: self.path.clone(), source })?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        Ok(true)
    }

    fn fail(&self, reason: InputError) -> TransferError {
        TransferError::Input { line: self.line, reason }
    }

    /// The next record, checked; `None` after the `end` line (and the end of the input).
    fn next(&mut self) -> Result<Option<(Record, Item)>, TransferError> {
        if !self.read_line()? {
            if self.ended {
                return Ok(None);
            }
            self.line += 1;
            return Err(self.fail(InputError::Truncated));
        }
        if self.ended {
            return Err(self.fail(InputError::AfterEnd));
        }
        let record: Record = serde_json::from_str(&self.buf).map_err(|e| self.fail(InputError::Json(e)))?;
        let item = self.item(&record).map_err(|reason| self.fail(reason))?;
        Ok(Some((record, item)))
    }

    fn item(&mut self, record: &Record) -> Result<Item, InputError> {
        let Some((app, _)) = &self.app else {
            let Record::Application(r) = record else {
                return Err(InputError::Order("the first record must be the `application`"));
            };
            let app = r.to_model()?;
            self.app = Some((app.id.clone(), r.chat_counter));
            self.records += 1;
            return Ok(Item::App(Box::new(app), r.chat_counter));
        };
        let app = app.clone();
        let item = match record {
            Record::Application(_) => return Err(InputError::Order("a second `application` line")),
            Record::End(end) => {
                if end.records != self.records {
                    return Err(InputError::Count { expected: end.records, found: self.records });
                }
                self.ended = true;
                return Ok(Item::End);
            }
            Record::Webhook(r) => Item::Webhook(r.to_model(&app)?),
            Record::Chat(r) => {
                let (chat, pair) = r.to_model(&app)?;
                if self.chat.is_some_and(|(c, _)| c >= chat.number) {
                    return Err(InputError::Order("chats must come in ascending number order, once each"));
                }
                // A counter below a stored number would hand that number out again.
                if self.app.as_ref().is_some_and(|(_, counter)| chat.number.get() > *counter) {
                    return Err(InputError::Order("a chat number above the application's `chat_counter`"));
                }
                self.chat = Some((chat.number, r.seq_counter));
                self.seq = 0;
                Item::Chat(chat, pair, r.seq_counter)
            }
            Record::Member(r) => Item::Member(app, self.in_chat(r.chat)?, r.to_model()?),
            Record::Message(r) => {
                self.in_chat(r.chat)?;
                let full = r.to_model(&app)?;
                if full.message.number.get() <= self.seq {
                    return Err(InputError::Order("a chat's messages must come in ascending seq order"));
                }
                if self.chat.is_some_and(|(_, counter)| full.message.number.get() > counter) {
                    return Err(InputError::Order("a seq above its chat's `seq_counter`"));
                }
                self.seq = full.message.number.get();
                Item::Message(Box::new(full))
            }
            Record::Attachment(r) => {
                self.in_chat(r.chat)?;
                Item::Attachment(r.to_model(&app)?)
            }
            Record::Receipt(r) => Item::Receipt(app, self.in_chat(r.chat)?, r.to_model()?),
            Record::Device(r) => Item::Device(r.to_model(&app)?),
            Record::NotificationSettings(r) => Item::Settings(r.to_model(&app)?),
        };
        self.records += 1;
        Ok(item)
    }

    /// `chat` when it is the chat of the last `chat` line.
    fn in_chat(&self, chat: u64) -> Result<ChatNumber, InputError> {
        match self.chat {
            Some((c, _)) if c.get() == chat => Ok(c),
            _ => {
                Err(InputError::Order("a member, message, attachment or receipt must follow its chat's line"))
            }
        }
    }
}

/// The checking pass: reads every line, writes nothing.
pub(super) fn check(path: &Path) -> Result<Summary, TransferError> {
    let mut reader = Reader::open(path)?;
    let mut summary = Summary::default();
    while let Some((record, _)) = reader.next()? {
        if !matches!(record, Record::End(_)) {
            summary.count(&record);
        }
    }
    Ok(summary)
}

/// The writing pass over a checked file.
pub(super) async fn import(
    store: &DynStore,
    numbers: &Numbering,
    path: &Path,
) -> Result<Summary, TransferError> {
    let mut reader = Reader::open(path)?;
    let mut writer = Writer { store, numbers, app: None, batch: Vec::new(), summary: Summary::default() };
    while let Some((record, item)) = reader.next()? {
        if !matches!(record, Record::End(_)) {
            writer.summary.count(&record);
        }
        writer.apply(item).await?;
    }
    Ok(writer.summary)
}

struct Writer<'a> {
    store: &'a DynStore,
    numbers: &'a Numbering,
    /// The application and its chat counter, written at the `end` line.
    app: Option<(Box<Application>, u64)>,
    /// Messages of one chat not yet written.
    batch: Vec<FullMessage>,
    summary: Summary,
}

impl Writer<'_> {
    async fn apply(&mut self, item: Item) -> Result<(), TransferError> {
        if let Item::Message(full) = item {
            self.batch.push(*full);
            if self.batch.len() >= BATCH {
                self.flush().await?;
            }
            return Ok(());
        }
        self.flush().await?;
        let store = self.store;
        match item {
            Item::App(app, counter) => {
                if store.application_by_token(&app.token).await?.is_some()
                    || store.application_by_id(&app.id).await?.is_some()
                {
                    return Err(TransferError::AppExists);
                }
                self.app = Some((app, counter));
            }
            Item::Webhook(webhook) => {
                if store.webhook(&webhook.app, &webhook.id).await?.is_none() {
                    store.insert_webhook(&webhook).await?;
                }
            }
            Item::Chat(chat, pair, counter) => {
                store.insert_chat(&chat).await?;
                if let Some(pair) = pair
                    && store.claim_direct_chat(&chat.app, &pair, chat.number).await? != chat.number
                {
                    return Err(TransferError::Diverged { chat: chat.number, seq: MessageNumber(0) });
                }
                self.numbers.raise_messages(&chat.app, chat.number, counter).await?;
            }
            Item::Member(app, chat, member) => {
                store.add_member(&app, chat, &member.user, member.role, member.joined_at).await?;
            }
            Item::Attachment(attachment) => {
                store.insert_attachment(&attachment).await?;
                // Not every store keeps `message` on insert; attaching twice to one message is a no-op.
                if let Some(number) = attachment.message {
                    store.attach(&attachment.app, &attachment.id, attachment.chat, number).await?;
                }
            }
            Item::Receipt(app, chat, state) => {
                if state.read.get() > 0 {
                    store.advance_read_state(&app, chat, &state.user, ReceiptKind::Read, state.read).await?;
                }
                if state.delivered.get() > 0 {
                    let kind = ReceiptKind::Delivered;
                    store.advance_read_state(&app, chat, &state.user, kind, state.delivered).await?;
                }
            }
            Item::Device(device) => store.put_device(&device).await?,
            Item::Settings(settings) => store.put_notification_settings(&settings).await?,
            Item::End => {
                // Last: until the application's record is written, the API does not see it.
                if let Some((app, counter)) = self.app.take() {
                    self.numbers.raise_chats(&app.id, counter).await?;
                    store.insert_application(&app).await?;
                }
            }
            Item::Message(_) => {}
        }
        Ok(())
    }

    /// Writes the batch: what is not stored yet in its first form, then each
    /// message's edits, deletion and reactions past what is stored.
    async fn flush(&mut self) -> Result<(), TransferError> {
        let batch = std::mem::take(&mut self.batch);
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return Ok(()) };
        let (app, chat) = (first.message.app.clone(), first.message.chat);
        let (low, high) = (first.message.number.get(), last.message.number.get());
        let range = MessageRange::window(low - 1, high - low + 1);
        let stored: HashMap<MessageNumber, Message> =
            self.store.messages(&app, chat, range).await?.into_iter().map(|m| (m.number, m)).collect();
        let fresh: Vec<Message> =
            batch.iter().filter(|f| !stored.contains_key(&f.message.number)).map(first_form).collect();
        if !fresh.is_empty() {
            self.store.insert_messages(&fresh).await?;
        }
        for full in &batch {
            self.settle(full, stored.get(&full.message.number)).await?;
        }
        Ok(())
    }

    /// Brings a written message to its state in the file.
    async fn settle(&self, full: &FullMessage, stored: Option<&Message>) -> Result<(), TransferError> {
        let (store, m) = (self.store, &full.message);
        let (app, chat, n) = (&m.app, m.chat, m.number);
        let diverged = || TransferError::Diverged { chat, seq: n };
        if let Some(deleted_at) = m.deleted_at {
            if stored.is_some_and(Message::is_deleted) {
                return Ok(());
            }
            if let Some(edited_at) = m.edited_at
                && stored.is_none_or(|s| s.edited_at.is_none())
            {
                store.edit_message(app, chat, n, "", edited_at).await?;
            }
            return match store.delete_message(app, chat, n, deleted_at).await? {
                Change::Done(_) => Ok(()),
                _ => Err(diverged()),
            };
        }
        if !full.versions.is_empty() {
            let have = if stored.is_some() { store.message_versions(app, chat, n).await?.len() } else { 0 };
            for i in have..full.versions.len() {
                let body = full.versions.get(i + 1).map_or(m.body.as_str(), |v| v.body.as_str());
                match store.edit_message(app, chat, n, body, full.versions[i].replaced_at).await? {
                    Change::Done(_) => {}
                    _ => return Err(diverged()),
                }
            }
        }
        let had = stored.map_or_else(Reactions::default, |s| s.reactions.clone());
        for (emoji, user) in m.reactions.pairs() {
            if !had.has(emoji, user) {
                store.set_reaction(app, chat, n, emoji, user, true).await?;
            }
        }
        Ok(())
    }
}

/// A message as first sent: its first body, no edit, deletion, reaction or
/// thread (replies written after it count themselves into it).
fn first_form(full: &FullMessage) -> Message {
    let m = &full.message;
    Message {
        body: if m.is_deleted() {
            String::new()
        } else {
            full.versions.first().map_or_else(|| m.body.clone(), |v| v.body.clone())
        },
        edited_at: None,
        deleted_at: None,
        reply_count: 0,
        last_reply_at: None,
        reactions: Reactions::default(),
        ..m.clone()
    }
}

/// Standard input copied to a file (the import reads its input twice),
/// removed when dropped.
pub(super) struct Spool(PathBuf);

impl Spool {
    /// Copies stdin to a new file in the temporary directory.
    pub(super) fn stdin() -> Result<Spool, TransferError> {
        let name = format!("weft-import-{}-{:016x}.jsonl", std::process::id(), rand::random::<u64>());
        let spool = Spool(std::env::temp_dir().join(name));
        let write_err = |source| TransferError::Read { path: spool.0.clone(), source };
        let mut file = File::create_new(&spool.0).map_err(write_err)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(write_err)?;
        Ok(spool)
    }

    /// Where the copy is.
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
