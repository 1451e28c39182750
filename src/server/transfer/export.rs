//! `weft export`: walks one application page by page and writes a line per record.
//!
//! Memory holds one page of a list at a time (chats, members, a window of
//! messages, receipts) and the set of user ids met on the way (to find their
//! devices and notification settings): never the messages of the application.

use std::collections::BTreeSet;
use std::io::Write;

use serde::Serialize;

use super::format::{
    AppRecord, AttachmentRecord, ChatRecord, DeviceRecord, EndRecord, Header, MemberRecord, MessageRecord,
    ReceiptRecord, Record, SettingsRecord, WebhookRecord,
};
use super::{Summary, TransferError};
use crate::ids::{AppId, AppToken, ChatNumber, UserId};
use crate::model::{Chat, ChatKind, DirectPair, MessageRange, Page};
use crate::sequence::Numbering;
use crate::store::DynStore;

/// Rows per list call.
const PAGE: usize = 200;
/// Messages per read.
const WINDOW: u64 = 500;

/// Where the lines go, counting the records.
struct Lines<'a> {
    out: &'a mut (dyn Write + Send),
    summary: Summary,
}

impl Lines<'_> {
    fn line(&mut self, value: &impl Serialize) -> Result<(), TransferError> {
        serde_json::to_writer(&mut *self.out, value).map_err(|e| TransferError::Write(e.into()))?;
        self.out.write_all(b"\n").map_err(TransferError::Write)
    }

    fn record(&mut self, record: &Record) -> Result<(), TransferError> {
        self.line(record)?;
        self.summary.count(record);
        Ok(())
    }
}

/// Writes the application `token` names, from `store`, to `out`.
pub(super) async fn export(
    store: &DynStore,
    numbers: &Numbering,
    token: &AppToken,
    out: &mut (dyn Write + Send),
) -> Result<Summary, TransferError> {
    let app = store.application_by_token(token).await?.ok_or(TransferError::UnknownApp)?;
    let mut lines = Lines { out, summary: Summary::default() };
    lines.line(&Header::current())?;
    let chat_counter = numbers.chats_count(&app.id).await?;
    lines.record(&Record::Application(AppRecord::of(&app, chat_counter)))?;
    for webhook in store.webhooks(&app.id).await? {
        lines.record(&Record::Webhook(WebhookRecord::of(&webhook)))?;
    }
    let mut users = BTreeSet::new();
    let mut skip = 0;
    loop {
        let chats = store.chats(&app.id, Page { skip, limit: PAGE }).await?;
        let numbers_of: Vec<ChatNumber> = chats.iter().map(|c| c.number).collect();
        let counters = numbers.messages_counts(&app.id, &numbers_of).await?;
        for (chat, counter) in chats.iter().zip(counters) {
            export_chat(store, chat, counter, &mut lines, &mut users).await?;
        }
        if chats.len() < PAGE {
            break;
        }
        skip += PAGE;
    }
    for user in &users {
        export_user(store, &app.id, user, &mut lines).await?;
    }
    let records = lines.summary.records;
    lines.line(&Record::End(EndRecord { records }))?;
    lines.out.flush().map_err(TransferError::Write)?;
    Ok(lines.summary)
}

async fn export_chat(
    store: &DynStore,
    chat: &Chat,
    counter: u64,
    lines: &mut Lines<'_>,
    users: &mut BTreeSet<UserId>,
) -> Result<(), TransferError> {
    let app = &chat.app;
    let pair = match chat.kind {
        ChatKind::Direct => direct_pair(store, chat).await?,
        ChatKind::Group => None,
    };
    let newest = store.max_message_number(app, chat.number).await?;
    lines.record(&Record::Chat(ChatRecord::of(chat, counter.max(newest), pair.as_ref())))?;
    let mut skip = 0;
    loop {
        let members = store.members(app, chat.number, Page { skip, limit: PAGE }).await?;
        for member in &members {
            lines.record(&Record::Member(MemberRecord::of(chat.number, member)))?;
            users.insert(member.user.clone());
        }
        if members.len() < PAGE {
            break;
        }
        skip += PAGE;
    }
    let mut from = 0;
    while from < newest {
        let mut window = store.messages(app, chat.number, MessageRange::window(from, WINDOW)).await?;
        window.reverse();
        for m in &window {
            let versions = if m.edited_at.is_some() && !m.is_deleted() {
                store.message_versions(app, chat.number, m.number).await?
            } else {
                Vec::new()
            };
            lines.record(&Record::Message(MessageRecord::of(m, &versions)))?;
            users.extend(m.sender.iter().cloned());
            users.extend(m.reactions.users().flat_map(|(_, who)| who.iter().cloned()));
            for file in &m.attachments {
                if let Some(attachment) = store.attachment(app, &file.id).await? {
                    lines.record(&Record::Attachment(AttachmentRecord::of(&attachment)))?;
                }
            }
        }
        from += WINDOW;
    }
    let mut skip = 0;
    loop {
        let states = store.read_states(app, chat.number, Page { skip, limit: PAGE }).await?;
        for state in &states {
            lines.record(&Record::Receipt(ReceiptRecord::of(chat.number, state)))?;
            users.insert(state.user.clone());
        }
        if states.len() < PAGE {
            break;
        }
        skip += PAGE;
    }
    Ok(())
}

/// The pair whose direct chat `chat` is: its two members, if the store says
/// the pair's chat is this one.
async fn direct_pair(store: &DynStore, chat: &Chat) -> Result<Option<DirectPair>, TransferError> {
    let members = store.members(&chat.app, chat.number, Page { skip: 0, limit: 3 }).await?;
    let [a, b] = members.as_slice() else { return Ok(None) };
    let Some(pair) = DirectPair::new(a.user.clone(), b.user.clone()) else { return Ok(None) };
    let claimed = store.direct_chat(&chat.app, &pair).await?;
    Ok((claimed == Some(chat.number)).then_some(pair))
}

async fn export_user(
    store: &DynStore,
    app: &AppId,
    user: &UserId,
    lines: &mut Lines<'_>,
) -> Result<(), TransferError> {
    for device in store.devices(app, user).await? {
        lines.record(&Record::Device(DeviceRecord::of(&device)))?;
    }
    if let Some(settings) = store.notification_settings(app, user).await? {
        lines.record(&Record::NotificationSettings(SettingsRecord::of(&settings)))?;
    }
    Ok(())
}
