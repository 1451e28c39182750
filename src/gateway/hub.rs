//! The sessions on this node, by application and user, and delivery to them.
//!
//! A frame is encoded once per message and shared by every recipient session
//! (`Utf8Bytes` clones are reference counts). Each session has a bounded
//! outbox; a session whose outbox is full is cut off as a slow consumer rather
//! than slowing anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chat::Deliver;
use crate::gateway::protocol::{MessageOut, ServerFrame};
use crate::ids::{AppId, UserId};
use crate::model::Message;

/// Identifies one session on this node.
pub type SessionId = u64;

/// What the hub holds of a session.
#[derive(Clone)]
pub struct SessionHandle {
    /// This session's id.
    pub id: SessionId,
    /// Its bounded outbox.
    pub outbox: mpsc::Sender<Utf8Bytes>,
    /// Cancelled to cut it off as a slow consumer.
    pub slow: CancellationToken,
}

type Key = (AppId, UserId);

/// The local session registry; cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    sessions: Arc<Mutex<HashMap<Key, Vec<SessionHandle>>>>,
    next_id: Arc<AtomicU64>,
}

impl Hub {
    /// A fresh session id.
    pub fn next_session_id(&self) -> SessionId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a session of `user`.
    pub fn register(&self, app: &AppId, user: &UserId, handle: SessionHandle) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.entry((app.clone(), user.clone())).or_default().push(handle);
    }

    /// Removes a session.
    pub fn unregister(&self, app: &AppId, user: &UserId, id: SessionId) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (app.clone(), user.clone());
        if let Some(list) = sessions.get_mut(&key) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                sessions.remove(&key);
            }
        }
    }

    /// Sessions open on this node.
    pub fn session_count(&self) -> usize {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.values().map(Vec::len).sum()
    }

    /// Queues `frame` on every session of `users` but `except`.
    pub fn send_to(&self, app: &AppId, users: &[UserId], frame: &Utf8Bytes, except: Option<SessionId>) {
        let targets: Vec<SessionHandle> = {
            let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            users
                .iter()
                .filter_map(|u| sessions.get(&(app.clone(), u.clone())))
                .flatten()
                .filter(|s| Some(s.id) != except)
                .cloned()
                .collect()
        };
        for session in targets {
            if session.outbox.try_send(frame.clone()).is_err() {
                session.slow.cancel();
            }
        }
    }
}

impl Deliver for Hub {
    fn deliver(&self, message: &Message, recipients: &[UserId], except: Option<SessionId>) {
        let frame = ServerFrame::Message(message_out(message)).to_text();
        self.send_to(&message.app, recipients, &Utf8Bytes::from(frame), except);
    }
}

/// A stored message as clients see it.
pub fn message_out(m: &Message) -> MessageOut {
    MessageOut {
        chat: m.chat,
        seq: m.number,
        sender: m.sender.clone(),
        body: m.body.clone(),
        sent_at: m.created_at,
        client_msg_id: m.client_msg_id.clone(),
        reply_to: m.reply_to,
    }
}
