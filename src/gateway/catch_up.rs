//! `hello`: the catch-up of each resumed chat, streamed to the socket.
//!
//! A frame is read, written and flushed before the next one is read, so a
//! client that does not read makes its session hold one frame, not its whole
//! backlog, until the write timeout cuts it off as slow (4200). Built whole
//! in memory first, 20 such clients resuming a chat of 64 MB took a node
//! from 13 MB to 1.6 GB.
//!
//! Frames are bounded in items ([`PAGE`]) and about [`FRAME_BYTES`]: reads
//! start small ([`FIRST_READ`]) and are sized to what is left of the frame
//! from the largest message the catch-up has met, so a chat of large messages
//! is read a few at a time and one of small messages 500 at a time. (The
//! store and the cache read by count: a read that meets much larger messages
//! than those before it can still hold up to `PAGE` of them.)
//!
//! The guarantees of `docs/design.md` ("Catch-up without gap or duplicate")
//! hold as when the catch-up was written at once: the loop drains no live
//! frame while a catch-up is written, so live traffic waits in the outbox
//! behind it (bounded as ever: overflowing it meanwhile cuts the session off);
//! messages the session already had live are skipped; and the newest numbers
//! carried are remembered so their live copies are skipped in turn.
//!
//! Each chat's catch-up ends in one of two frames that name it: a `messages`
//! frame with `done: true` (its `has_more` says whether the client must page
//! on with `sync`, past `resume_max_messages`), or an `error` with `chat`. A
//! client needs neither the next chat's frames nor a silence to know.

use std::collections::HashSet;
use std::time::Instant;

use super::handlers::Answers;
use super::session::{Closing, LoopState, Session, Sink};
use crate::delivery::{Outbox, message_out_for};
use crate::ids::{ChatNumber, MessageNumber};
use crate::protocol::{MessageOut, RequestId, Resume, ServerFrame};

/// Items of one `messages` frame, at most.
pub(super) const PAGE: usize = 500;
/// About the most bytes of messages one frame carries.
const FRAME_BYTES: usize = 512 * 1024;
/// Messages a chat's first read asks for, before their size is known.
const FIRST_READ: usize = 16;
/// What a message adds to a frame besides its body (numbers, sender, time, ids), about.
const ITEM_OVERHEAD: usize = 160;

/// One chat's catch-up frame as it fills.
struct Filling {
    items: Vec<MessageOut>,
    bytes: usize,
}

impl Session {
    /// Writes every missed message of each resumed chat, a frame at a time,
    /// and remembers the newest numbers sent so their live copies are skipped.
    pub(super) async fn hello(
        &self,
        id: Option<RequestId>,
        resume: Vec<Resume>,
        live: &mut LoopState,
        sink: &mut Sink,
        outbox: &Outbox,
    ) -> Closing {
        let mut seen_chats = HashSet::new();
        for Resume { chat, after } in resume {
            if !seen_chats.insert(chat) {
                continue;
            }
            let closing = self.catch_up(id.clone(), chat, after, live, sink, outbox).await;
            if closing.is_some() {
                return closing;
            }
        }
        // The client took every frame, however long that was: it is alive.
        live.last_heard = Instant::now();
        None
    }

    /// One chat's catch-up.
    async fn catch_up(
        &self,
        id: Option<RequestId>,
        chat: ChatNumber,
        after: MessageNumber,
        live: &mut LoopState,
        sink: &mut Sink,
        outbox: &Outbox,
    ) -> Closing {
        let max = self.state.config.resume_max_messages;
        // A live copy can only trail the catch-up by what the outbox holds.
        let remember = self.state.config.outbox_frames.max(PAGE);
        // Messages this session already got live are not repeated.
        let got_live = outbox.live_of_chat(chat);
        let (mut position, mut total) = (after, 0usize);
        let mut sent: Vec<MessageNumber> = Vec::new();
        let mut frame = Filling { items: Vec::new(), bytes: 0 };
        let (mut read, mut largest) = (FIRST_READ, 0usize);
        let closing = loop {
            let limit = read.min(PAGE - frame.items.len()).min(max - total);
            let page = match self.state.chat.catch_up(&self.app.id, &self.user, chat, position, limit).await {
                Ok(page) => page,
                Err(e) => {
                    let mut answers = Answers::default();
                    if !frame.items.is_empty() {
                        let items = std::mem::take(&mut frame.items);
                        answers.frames.push(ServerFrame::CatchUp {
                            id: id.clone(),
                            chat,
                            items,
                            has_more: true,
                            done: false,
                        });
                    }
                    // The error ends this chat's catch-up, and says which chat.
                    answers.push_failed_chat(id, chat, &e);
                    break self.answer(answers, live, sink, outbox).await;
                }
            };
            total += page.items.len();
            position = page.next;
            let last = !page.has_more || total >= max;
            for m in page.items {
                let size = m.body.len() + ITEM_OVERHEAD;
                largest = largest.max(size);
                if got_live.contains(&m.number) {
                    continue;
                }
                frame.bytes += size;
                sent.push(m.number);
                frame.items.push(message_out_for(&m, &self.user));
            }
            let full = frame.items.len() >= PAGE || frame.bytes >= FRAME_BYTES;
            if (full && !frame.items.is_empty()) || last {
                let items = std::mem::take(&mut frame.items);
                frame.bytes = 0;
                let out =
                    ServerFrame::CatchUp { id: id.clone(), chat, items, has_more: page.has_more, done: last };
                let closing = self
                    .answer(Answers { frames: vec![out], ..Answers::default() }, live, sink, outbox)
                    .await;
                if closing.is_some() || last {
                    break closing;
                }
            }
            // What is left of the frame, in messages as large as the largest met.
            read = (FRAME_BYTES.saturating_sub(frame.bytes) / largest.max(1)).clamp(1, PAGE);
        };
        let keep_from = sent.len().saturating_sub(remember);
        outbox.carried(chat, sent.drain(keep_from..));
        closing
    }
}
